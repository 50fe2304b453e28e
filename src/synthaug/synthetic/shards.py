"""Sharded, resumable generation: each shard is written atomically, finished shards are skipped on rerun."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthaug.core.distributed import Ranks, wait_for_ranks
from synthaug.core.errors import MissingInput
from synthaug.core.io import atomic_path
from synthaug.data.storage import ImageSet
from synthaug.synthetic.plan import SynthItem

FINGERPRINT_FILE = "fingerprint.txt"
METADATA_FILE = "metadata.csv"
METADATA_FIELDS = ("shard", "class_index", "class_name", "index", "seed", "source_index", "prompt", "generator")


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.npz"


def chunks(items: list[SynthItem], size: int) -> Iterator[tuple[int, list[SynthItem]]]:
    for number, start in enumerate(range(0, len(items), size)):
        yield number, items[start : start + size]


def generate_shards(
    items: list[SynthItem],
    shard_size: int,
    workdir: Path,
    digest: str,
    generate: Callable[[list[SynthItem]], np.ndarray],
    ranks: Ranks = Ranks(),
) -> int:
    """Fill `workdir` with one .npz per shard; returns how many images this call (this rank) generated.

    With several ranks, rank r makes shards r, r + world, ...: every image depends only on its own
    seed, so the shards are those of one process. All ranks return once every shard exists.
    """
    marker = workdir / FINGERPRINT_FILE
    if ranks.is_main:
        if workdir.exists() and (not marker.is_file() or marker.read_text() != digest):
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        marker.write_text(digest)
    wait_for_ranks(ranks)
    generated = 0
    mine = [
        (number, shard_items)
        for number, shard_items in chunks(items, shard_size)
        if number % ranks.world_size == ranks.rank
    ]
    bar = tqdm(total=sum(len(shard_items) for _, shard_items in mine), desc="generate", unit="img", disable=None)
    for number, shard_items in mine:
        path = workdir / shard_name(number)
        if not path.exists():
            images = generate(shard_items)
            if images.shape[0] != len(shard_items) or images.dtype != np.uint8:
                raise ValueError(f"generator returned {images.shape} {images.dtype} for {len(shard_items)} items")
            labels = np.array([item.class_index for item in shard_items], dtype=np.int64)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, images=images, labels=labels)
            generated += len(shard_items)
        bar.update(len(shard_items))
    bar.close()
    wait_for_ranks(ranks)
    return generated


def publish_synthetic_set(
    out: Path, items: list[SynthItem], shard_size: int, generator: str, workdir: Path | None = None
) -> None:
    """Move the finished shards of `items` from their work folder (default: out's) into `out`, with metadata.csv,
    at once."""
    from synthaug.core.io import work_folder

    workdir = work_folder(out) if workdir is None else workdir
    with atomic_path(out, directory=True) as tmp:
        for shard in sorted(workdir.glob("shard-*.npz")):
            os.replace(shard, tmp / shard.name)
        (tmp / METADATA_FILE).write_text(metadata_csv(items, shard_size, generator), encoding="utf-8")
    shutil.rmtree(workdir)


def metadata_rows(items: list[SynthItem], shard_size: int, generator: str) -> list[dict]:
    return [
        {"shard": shard_name(number), **item.to_dict(), "generator": generator}
        for number, shard_items in chunks(items, shard_size)
        for item in shard_items
    ]


def load_synthetic(folder: Path, class_names: tuple[str, ...]) -> ImageSet:
    """All shards of a synthesize output, in order, as one ImageSet (empty if nothing was needed)."""
    if not (folder / METADATA_FILE).is_file():
        raise MissingInput(f"{folder / METADATA_FILE}: synthetic set not found (run the synthesize stage first)")
    shards = sorted(folder.glob("shard-*.npz"))
    if not shards:
        return ImageSet(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), class_names)
    images, labels = [], []
    for shard in shards:
        with np.load(shard, allow_pickle=False) as archive:
            images.append(archive["images"])
            labels.append(archive["labels"])
    return ImageSet(np.concatenate(images), np.concatenate(labels).astype(np.int64), class_names)


def metadata_csv(items: list[SynthItem], shard_size: int, generator: str) -> str:
    """The metadata table of a synthesize output: one row per image, in shard order."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=METADATA_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(metadata_rows(items, shard_size, generator))
    return table.getvalue()


def preview_grids(real: ImageSet, synthetic: ImageSet, per_class: int) -> dict[str, np.ndarray]:
    """Per class that received synthetic images: a row of real images above two rows of synthetic ones, all at the
    larger of the two sets' sizes."""
    from synthaug.core.plots import image_grid
    from synthaug.data.pixels import resize_uint8

    size = max(real.image_size, synthetic.image_size)
    grids = {}
    for cls, class_name in enumerate(real.class_names):
        fake = synthetic.images[synthetic.labels == cls][: 2 * per_class]
        if len(fake) == 0:
            continue
        rows = [real.images[real.labels == cls][:per_class]] + [
            fake[i : i + per_class] for i in range(0, len(fake), per_class)
        ]
        grids[class_name] = image_grid([resize_uint8(row, size) for row in rows])
    return grids
