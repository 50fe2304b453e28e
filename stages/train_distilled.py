"""DVC stage `train_distilled`: a classifier trained as the distilled variant, once per experiment.seeds entry.

The imbalanced set, learnt from its labels and from the soft targets of a trained teacher entry (train.distill:
its classifier and variant, never full), each seed from the teacher's same seed (Hinton et al., 2015).
"""

from __future__ import annotations

from pathlib import Path

from synthaug.core.params import DISTILLED_VARIANT
from synthaug.core.runner import run_stage
from synthaug.train.entry import Entry, entry_params, entry_parser, train_entry


def main() -> str:
    parser = entry_parser(__doc__, "experiment.distilled entry")
    parser.add_argument("--teacher", type=Path, required=True, help="the teacher entry's checkpoints (seed<k>/)")
    args = parser.parse_args()
    params, seeds = entry_params()
    entry = Entry.from_arguments("train_distilled", args, DISTILLED_VARIANT, teacher=args.teacher)
    return train_entry(entry, params, seeds)


if __name__ == "__main__":
    run_stage("train_distilled", main, exit_process=True)
