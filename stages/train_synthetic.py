"""DVC stage `train_synthetic`: a classifier trained on a generator's images, once per experiment.seeds entry.

mix synthetic: the real imbalanced set plus the generator's images (variant synthetic_<g>), filtered by the judge
entry when train.synthetic_filter.enabled. mix synthetic_only: the generator's evaluation images alone (variant
synthetic_only_<g>), tested on real images: the classification accuracy score (CAS), nothing filtered. mix
real_equal: real images alone, as many per class as the generator's evaluation images (variant real_equal_<g>),
drawn balanced from the real train pool: CAS's reference at equal size.
"""

from __future__ import annotations

from synthaug.core.runner import run_stage
from synthaug.pipeline.train_synthetic import parser, train_synthetic


def main() -> str:
    return train_synthetic(parser(__doc__).parse_args())


if __name__ == "__main__":
    run_stage("train_synthetic", main, exit_process=True)
