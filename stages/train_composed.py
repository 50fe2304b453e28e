"""DVC stage `train_composed`: variant synthetic_<g>+<remedy>, two remedies at once, once per experiment.seeds
entry. The real imbalanced set plus generator g's images (filtered by the judge entry as synthetic_<g>'s are), trained
with loss variant <remedy> (experiment.composed), whose class statistics come from the real images alone.
"""

from __future__ import annotations

from pathlib import Path

from synthaug.core.params import GENERATORS, LOSS_VARIANTS, composed_variant
from synthaug.core.runner import run_stage
from synthaug.train.entry import AddedImages, Entry, entry_params, entry_parser, train_entry


def main() -> str:
    parser = entry_parser(__doc__, "experiment.classifiers entry")
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--remedy", required=True, choices=LOSS_VARIANTS, help="experiment.composed entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    args = parser.parse_args()
    params, seeds = entry_params()
    added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    variant = composed_variant(args.generator, args.remedy)
    return train_entry(Entry.from_arguments("train_composed", args, variant, added), params, seeds)


if __name__ == "__main__":
    run_stage("train_composed", main, exit_process=True)
