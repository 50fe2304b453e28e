"""DVC stage `fetch`: CIFAR-10 (download or local archive) -> one compact .npz per split + meta.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.param_rules import load_section
from synthaug.core.params import FetchParams
from synthaug.core.runner import run_stage
from synthaug.pipeline.fetch import fetch


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="output folder (train.npz, test.npz, meta.json)")
    args = parser.parse_args()
    return fetch(load_section("fetch", FetchParams), args.out)


if __name__ == "__main__":
    run_stage("fetch", main, exit_process=True)
