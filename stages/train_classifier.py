"""DVC stage `train_classifier`: one (classifier, real-data variant) entry of the experiment matrix, trained and
tested once per experiment.seeds entry in one process (synthaug.train.entry)."""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.pipeline.train_classifier import parser, train_classifier


def main() -> str:
    return train_classifier(parser(__doc__).parse_args())


if __name__ == "__main__":
    run_stage("train_classifier", main, exit_process=True)
