"""The train_synthetic stage: a classifier trained on a generator's images (beside the real ones, alone, or as
many real ones instead), once per seed."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.variants import (
    GENERATORS,
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    generator_variant,
)
from synthaug.train.entry import AddedImages, Entry, entry_params, entry_parser, train_entry

# --mix names the variant's prefix without its trailing underscore
MIXES = {prefix.rstrip("_"): prefix for prefix in (SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX, REAL_EQUAL_PREFIX)}


def parser(description: str) -> argparse.ArgumentParser:
    parser = entry_parser(description, "experiment.classifiers entry")
    parser.add_argument(
        "--mix", required=True, choices=list(MIXES), help="beside the real images, alone, or as many real ones instead"
    )
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--synthetic-eval", type=Path, required=True, help="the generator's evaluation images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    return parser


def train_synthetic(args: argparse.Namespace) -> str:
    params, seeds = entry_params()
    if args.mix == "synthetic":
        added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    else:
        added = AddedImages(args.synthetic_eval, alone=True, count_only=args.mix == "real_equal")
    variant = generator_variant(MIXES[args.mix], args.generator)
    return train_entry(Entry.from_arguments("train_synthetic", args, variant, added), params, seeds)
