"""The train_careful stage: variant <use>_<g>, a generator's images used with care, once per seed: weighted (a
lower loss weight for them) or finetuned (a last phase on the real images with a class-balanced loss)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.variants import CAREFUL_USES, GENERATORS, careful_variant
from synthaug.train.entry import AddedImages, Entry, entry_params, entry_parser, train_entry


def parser(description: str) -> argparse.ArgumentParser:
    parser = entry_parser(description, "experiment.classifiers entry")
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--use", required=True, choices=CAREFUL_USES, help="experiment.careful entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    return parser


def train_careful(args: argparse.Namespace) -> str:
    params, seeds = entry_params()
    added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    variant = careful_variant(args.use, args.generator)
    return train_entry(Entry.from_arguments("train_careful", args, variant, added), params, seeds)
