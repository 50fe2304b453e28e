"""DVC stage `train_classifier`: one (classifier, real-data variant) entry of the experiment matrix, trained and
tested once per experiment.seeds entry in one process (synthaug.train.entry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.params import ExperimentParams, TrainParams, load_section
from synthaug.runner import run_stage
from synthaug.train.entry import EntryOutputs, train_entry


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classifier", required=True, help="experiment.classifiers entry: vit, cnn or timm")
    parser.add_argument("--variant", required=True, help="experiment.variants entry")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    EntryOutputs.add_arguments(parser)
    args = parser.parse_args()
    params = load_section("train", TrainParams)
    seeds = load_section("experiment", ExperimentParams).seeds
    outputs = EntryOutputs.from_arguments(args)
    return train_entry(
        "train_classifier", args.classifier, args.variant, args.data, args.splits, outputs, params, seeds
    )


if __name__ == "__main__":
    run_stage("train_classifier", main)
