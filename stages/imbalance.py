"""DVC stage `imbalance`: seeded per-class keep fractions + a balanced validation split, as indices."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.param_rules import load_section
from synthaug.core.params import ImbalanceParams
from synthaug.core.runner import run_stage
from synthaug.pipeline.imbalance import imbalance


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="split indices (.npz: train, val, full)")
    parser.add_argument("--counts", type=Path, required=True, help="class counts (.json) and their plot (.csv)")
    args = parser.parse_args()
    return imbalance(load_section("imbalance", ImbalanceParams), args.data, args.out, args.counts)


if __name__ == "__main__":
    run_stage("imbalance", main, exit_process=True)
