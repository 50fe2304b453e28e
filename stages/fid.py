"""DVC stage `fid`: how close one generator's images are to the real test set (FID/KID, precision/recall, diversity,
recognition by the full-data classifier), once per generator run (synthaug.pipeline.fid)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.param_rules import load_section
from synthaug.core.params import FidParams
from synthaug.core.runner import run_stage
from synthaug.core.variants import GENERATORS
from synthaug.pipeline.fid import FidPaths, read_generator


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument(
        "--eval-set", type=Path, required=True, help="the generator's evaluation sets from synthesize (<run>/ each)"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="fetched dataset folder (its test split is the reference)"
    )
    parser.add_argument("--feature-model", type=Path, required=True, help="classifier trained on the full real data")
    parser.add_argument("--out", type=Path, required=True, help="FID and KID, mean over runs (.json, DVC metrics)")
    parser.add_argument("--detail", type=Path, required=True, help="each run's readings, per class (.json)")
    args = parser.parse_args()
    paths = FidPaths(args.eval_set, args.data, args.feature_model, args.out, args.detail)
    return read_generator(args.generator, load_section("fid", FidParams), paths)


if __name__ == "__main__":
    run_stage("fid", main, exit_process=True)
