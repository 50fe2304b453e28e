"""DVC stage `train_distilled`: a classifier trained as the distilled variant, once per experiment.seeds entry.

The imbalanced set, learnt from its labels and from the soft targets of a trained teacher entry (train.distill:
its classifier and variant, never full), each seed from the teacher's same seed (Hinton et al., 2015).
"""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.pipeline.train_distilled import parser, train_distilled


def main() -> str:
    return train_distilled(parser(__doc__).parse_args())


if __name__ == "__main__":
    run_stage("train_distilled", main, exit_process=True)
