"""DVC stage `train_classifier`: one (classifier, real-data variant) entry of the experiment matrix, trained and
tested once per experiment.seeds entry in one process (synthaug.train.entry)."""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.train.entry import Entry, entry_params, entry_parser, train_entry


def main() -> str:
    parser = entry_parser(__doc__, "experiment.classifiers entry")
    parser.add_argument("--variant", required=True, help="experiment.variants entry")
    args = parser.parse_args()
    params, seeds = entry_params()
    return train_entry(Entry.from_arguments("train_classifier", args, args.variant), params, seeds)


if __name__ == "__main__":
    run_stage("train_classifier", main, exit_process=True)
