"""The train_classifier stage: one (classifier, real-data variant) entry, trained and tested once per seed."""

from __future__ import annotations

import argparse

from synthaug.train.entry import Entry, entry_params, entry_parser, train_entry


def parser(description: str) -> argparse.ArgumentParser:
    parser = entry_parser(description, "experiment.classifiers entry")
    parser.add_argument("--variant", required=True, help="experiment.variants entry")
    return parser


def train_classifier(args: argparse.Namespace) -> str:
    params, seeds = entry_params()
    return train_entry(Entry.from_arguments("train_classifier", args, args.variant), params, seeds)
