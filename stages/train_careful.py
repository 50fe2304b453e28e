"""DVC stage `train_careful`: variant <use>_<g>, generator g's images used with care, once per experiment.seeds
entry. The real imbalanced set plus g's images (filtered by the judge entry as synthetic_<g>'s are); weighted: each
generated image's loss weighted by train.careful.synthetic_weight; finetuned: the last train.careful.real_epochs
epochs on the real images only, with a class-balanced loss.
"""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.pipeline.train_careful import parser, train_careful


def main() -> str:
    return train_careful(parser(__doc__).parse_args())


if __name__ == "__main__":
    run_stage("train_careful", main, exit_process=True)
