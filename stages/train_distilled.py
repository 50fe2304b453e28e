"""DVC stage `train_distilled`: a classifier trained as the distilled variant, once per experiment.seeds entry.

The imbalanced set, learnt from its labels and from the soft targets of a trained teacher entry (train.distill:
its classifier and variant, never full), each seed from the teacher's same seed (Hinton et al., 2015).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.params import CLASSIFIERS, DISTILLED_VARIANT, ExperimentParams, TrainParams, load_section
from synthaug.runner import run_stage
from synthaug.train.entry import EntryOutputs, train_entry


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classifier", required=True, choices=CLASSIFIERS, help="experiment.distilled entry")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument("--teacher", type=Path, required=True, help="the teacher entry's checkpoints (seed<k>/)")
    EntryOutputs.add_arguments(parser)
    args = parser.parse_args()
    params = load_section("train", TrainParams)
    seeds = load_section("experiment", ExperimentParams).seeds
    outputs = EntryOutputs.from_arguments(args)
    return train_entry(
        "train_distilled",
        args.classifier,
        DISTILLED_VARIANT,
        args.data,
        args.splits,
        outputs,
        params,
        seeds,
        teacher=args.teacher,
    )


if __name__ == "__main__":
    run_stage("train_distilled", main)
