"""The train_synthetic stage: a classifier trained on a generator's images (beside the real ones, alone, or as
many real ones instead), once per seed."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthaug.core.variants import (
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    generator_variant,
)
from synthaug.train.entry import (
    AddedImages,
    Entry,
    added_images_parser,
    entry_params,
    train_entry,
    train_with_added_images,
)

# --mix names the variant's prefix without its trailing underscore
MIXES = {prefix.rstrip("_"): prefix for prefix in (SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX, REAL_EQUAL_PREFIX)}


def parser(description: str) -> argparse.ArgumentParser:
    parser = added_images_parser(description)
    parser.add_argument(
        "--mix", required=True, choices=list(MIXES), help="beside the real images, alone, or as many real ones instead"
    )
    parser.add_argument("--synthetic-eval", type=Path, required=True, help="the generator's evaluation images")
    return parser


def train_synthetic(args: argparse.Namespace) -> str:
    variant = generator_variant(MIXES[args.mix], args.generator)
    if args.mix == "synthetic":
        return train_with_added_images("train_synthetic", args, variant)
    params, seeds = entry_params()
    added = AddedImages(args.synthetic_eval, alone=True, count_only=args.mix == "real_equal")
    return train_entry(Entry.from_arguments("train_synthetic", args, variant, added), params, seeds)
