"""DVC stage `synthesize`: one generator's images for the minority classes, and a test-distributed set for FID, once
per generator run (synthaug.pipeline.synthesize)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.generator_params import SynthesizeParams
from synthaug.core.param_rules import load_section
from synthaug.core.params import ExperimentParams
from synthaug.core.runner import run_stage
from synthaug.core.variants import GENERATORS
from synthaug.pipeline.synthesize import SynthesizePaths, synthesize_generator


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--model", type=Path, required=True, help="train_generator output for this generator")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument("--out", type=Path, required=True, help="output folder (<run>/: shards, metadata.csv)")
    parser.add_argument("--eval-out", type=Path, required=True, help="FID/KID set: the test set's class distribution")
    parser.add_argument(
        "--previews", type=Path, required=True, help="preview grids folder (<run>/); counts go to <previews>.json"
    )
    args = parser.parse_args()
    paths = SynthesizePaths(args.model, args.data, args.splits, args.out, args.eval_out, args.previews)
    params = load_section("synthesize", SynthesizeParams)
    return synthesize_generator(args.generator, params, load_section("experiment", ExperimentParams), paths)


if __name__ == "__main__":
    run_stage("synthesize", main, exit_process=True)
