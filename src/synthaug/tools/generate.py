"""Images of one class from a pipeline generator, seeded per image exactly as the synthesize stage seeds them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthaug.core.errors import ParamsError
from synthaug.core.generator_params import SynthesizeParams
from synthaug.data.storage import ImageSet
from synthaug.generators.backends import make_backend, prompt_templates
from synthaug.pipeline.synthesize import load_sources
from synthaug.synthetic.plan import SynthItem, plan_items


def class_items(
    train: ImageSet, train_idx: np.ndarray, class_name: str, count: int, templates: list[str], seed: int
) -> list[SynthItem]:
    """The first `count` items synthesize would plan for the class with this seed (item k is the same whatever the
    count): its per-image seed, its source image and its prompt."""
    if class_name not in train.class_names:
        raise ParamsError(
            f"--class {class_name!r}: not a class of this dataset (one of {', '.join(train.class_names)})"
        )
    counts = np.zeros(train.num_classes, dtype=np.int64)
    counts[train.class_names.index(class_name)] = count
    return plan_items(train_idx, train.labels, train.class_names, counts, templates, seed)


def plan_class(
    generator: str, params: SynthesizeParams, data: Path, splits: Path, class_name: str, count: int, seed: int
) -> tuple[ImageSet, list[SynthItem]]:
    """The fetched train split and the class's first `count` synthesize items (class_items) from the pipeline's
    fetch and imbalance outputs, loaded as the synthesize stage loads them."""
    train, train_idx = load_sources(data, splits)
    return train, class_items(train, train_idx, class_name, count, prompt_templates(generator, params), seed)


def load_generator(generator: str, params: SynthesizeParams, model_dir: Path, train: ImageSet) -> Callable:
    """The exported generator as the synthesize stage loads it: items in, uint8 (n, H, W, 3) images out."""
    return make_backend(generator, params, model_dir, train.images, train.class_names)


def generate_items(
    backend: Callable[[list[SynthItem]], np.ndarray],
    items: list[SynthItem],
    batch_size: int,
    progress: Callable[[int], None] = lambda done: None,
) -> np.ndarray:
    """uint8 (len(items), H, W, 3) images, made in batches of `batch_size`."""
    batches = []
    for start in range(0, len(items), batch_size):
        batches.append(backend(items[start : start + batch_size]))
        progress(len(batches[-1]))
    return np.concatenate(batches)
