"""The train_composed stage: variant synthetic_<g>+<remedy>, a generator's images and a loss-side fix at once,
once per seed."""

from __future__ import annotations

import argparse

from synthaug.core.variants import LOSS_VARIANTS, composed_variant
from synthaug.train.entry import added_images_parser, train_with_added_images


def parser(description: str) -> argparse.ArgumentParser:
    parser = added_images_parser(description)
    parser.add_argument("--remedy", required=True, choices=LOSS_VARIANTS, help="experiment.composed entry")
    return parser


def train_composed(args: argparse.Namespace) -> str:
    return train_with_added_images("train_composed", args, composed_variant(args.generator, args.remedy))
