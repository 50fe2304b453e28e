"""The train_distilled stage: a classifier trained as the distilled variant, once per seed, each seed from the
teacher's same seed."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.variants import DISTILLED_VARIANT
from synthaug.train.entry import Entry, entry_params, entry_parser, train_entry


def parser(description: str) -> argparse.ArgumentParser:
    parser = entry_parser(description, "experiment.distilled entry")
    parser.add_argument("--teacher", type=Path, required=True, help="the teacher entry's checkpoints (seed<k>/)")
    return parser


def train_distilled(args: argparse.Namespace) -> str:
    params, seeds = entry_params()
    entry = Entry.from_arguments("train_distilled", args, DISTILLED_VARIANT, teacher=args.teacher)
    return train_entry(entry, params, seeds)
