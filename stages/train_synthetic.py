"""DVC stage `train_synthetic`: a classifier trained on a generator's images, once per experiment.seeds entry.

mix synthetic: the real imbalanced set plus the generator's images (variant synthetic_<g>), filtered by the judge
entry when train.synthetic_filter.enabled. mix synthetic_only: the generator's evaluation images alone (variant
synthetic_only_<g>), tested on real images: the classification accuracy score (CAS), nothing filtered. mix
real_equal: real images alone, as many per class as the generator's evaluation images (variant real_equal_<g>),
drawn balanced from the real train pool: CAS's reference at equal size.
"""

from __future__ import annotations

from pathlib import Path

from synthaug.core.params import (
    GENERATORS,
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    generator_variant,
)
from synthaug.core.runner import run_stage
from synthaug.train.entry import AddedImages, Entry, entry_params, entry_parser, train_entry

# --mix names the variant's prefix without its trailing underscore
MIXES = {prefix.rstrip("_"): prefix for prefix in (SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX, REAL_EQUAL_PREFIX)}


def main() -> str:
    parser = entry_parser(__doc__, "experiment.classifiers entry")
    parser.add_argument(
        "--mix", required=True, choices=list(MIXES), help="beside the real images, alone, or as many real ones instead"
    )
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--synthetic-eval", type=Path, required=True, help="the generator's evaluation images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    args = parser.parse_args()
    params, seeds = entry_params()
    if args.mix == "synthetic":
        added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    else:
        added = AddedImages(args.synthetic_eval, alone=True, count_only=args.mix == "real_equal")
    variant = generator_variant(MIXES[args.mix], args.generator)
    return train_entry(Entry.from_arguments("train_synthetic", args, variant, added), params, seeds)


if __name__ == "__main__":
    run_stage("train_synthetic", main, exit_process=True)
