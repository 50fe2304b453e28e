"""The train_careful stage: variant <use>_<g>, a generator's images used with care, once per seed: weighted (a
lower loss weight for them) or finetuned (a last phase on the real images with a class-balanced loss)."""

from __future__ import annotations

import argparse

from synthaug.core.variants import CAREFUL_USES, careful_variant
from synthaug.train.entry import added_images_parser, train_with_added_images


def parser(description: str) -> argparse.ArgumentParser:
    parser = added_images_parser(description)
    parser.add_argument("--use", required=True, choices=CAREFUL_USES, help="experiment.careful entry")
    return parser


def train_careful(args: argparse.Namespace) -> str:
    return train_with_added_images("train_careful", args, careful_variant(args.use, args.generator))
