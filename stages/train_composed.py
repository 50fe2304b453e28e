"""DVC stage `train_composed`: variant synthetic_<g>+<remedy>, two remedies at once, once per experiment.seeds
entry. The real imbalanced set plus generator g's images (filtered by the judge entry as synthetic_<g>'s are), trained
with loss variant <remedy> (experiment.composed), whose class statistics come from the real images alone.
"""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.pipeline.train_composed import parser, train_composed


def main() -> str:
    return train_composed(parser(__doc__).parse_args())


if __name__ == "__main__":
    run_stage("train_composed", main, exit_process=True)
