"""The train_composed stage: variant synthetic_<g>+<remedy>, a generator's images and a loss-side fix at once,
once per seed."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.variants import GENERATORS, LOSS_VARIANTS, composed_variant
from synthaug.train.entry import AddedImages, Entry, entry_params, entry_parser, train_entry


def parser(description: str) -> argparse.ArgumentParser:
    parser = entry_parser(description, "experiment.classifiers entry")
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--remedy", required=True, choices=LOSS_VARIANTS, help="experiment.composed entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    return parser


def train_composed(args: argparse.Namespace) -> str:
    params, seeds = entry_params()
    added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    variant = composed_variant(args.generator, args.remedy)
    return train_entry(Entry.from_arguments("train_composed", args, variant, added), params, seeds)
