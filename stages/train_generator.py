"""DVC stage `train_generator`: train one of the pipeline's own generators (ddpm, gan) on the imbalanced split,
once per generator run; a pretrained one (sdxl_turbo) records that it has nothing to train
(synthaug.pipeline.train_generator).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.generator_params import TrainGeneratorParams
from synthaug.core.param_rules import load_section
from synthaug.core.params import ExperimentParams
from synthaug.core.runner import run_stage
from synthaug.core.variants import GENERATORS
from synthaug.pipeline.train_generator import GeneratorPaths, train_generator_runs


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument(
        "--out", type=Path, required=True, help="generator folder: <run>/ (weights, generator.json) per run"
    )
    parser.add_argument(
        "--curves",
        type=Path,
        required=True,
        help="<curves>.json summary; loss.csv, loss.png, samples.png in <curves>/<run>/",
    )
    args = parser.parse_args()
    params = load_section("train_generator", TrainGeneratorParams)
    paths = GeneratorPaths(args.data, args.splits, args.out, args.curves)
    return train_generator_runs(args.generator, params, load_section("experiment", ExperimentParams), paths)


if __name__ == "__main__":
    run_stage("train_generator", main, exit_process=True)
