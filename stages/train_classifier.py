"""DVC stage `train_classifier`: one (classifier, real-data variant) entry of the experiment matrix, trained and
tested once per experiment.seeds entry in one process (synthaug.train.entry)."""

from __future__ import annotations

from synthaug.runner import run_stage
from synthaug.train.entry import EntryOutputs, entry_params, entry_parser, train_entry


def main() -> str:
    parser = entry_parser(__doc__, "experiment.classifiers entry")
    parser.add_argument("--variant", required=True, help="experiment.variants entry")
    args = parser.parse_args()
    params, seeds = entry_params()
    outputs = EntryOutputs.from_arguments(args)
    return train_entry(
        "train_classifier", args.classifier, args.variant, args.data, args.splits, outputs, params, seeds
    )


if __name__ == "__main__":
    run_stage("train_classifier", main)
