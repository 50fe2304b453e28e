"""Does cost grow linearly with the data? fetch and classifier training at N and 2N images, same run.

fetch: `read_archive` (the fetch stage's decode) on two ImageFolder tarballs cut from the real
archive, with the first N and 2N train images (N / 10 per class; 20 test images per class in both). Training: one
epoch of `train_classifier` with the committed params' ViT on the first N and 2N decoded images
(the same 200 validation images in both). Prints seconds and the 2N / N ratio (2.0 = linear);
writes metrics/bench/scaling.json.

    python bench/scaling.py --archive ../shared/datasets/cifar10-jpg.tar.gz [--images 5000]
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from record import machine_info, save_bench
from synthaug.core.param_rules import load_section
from synthaug.core.params import TrainParams
from synthaug.pipeline.fetch import read_archive
from synthaug.train.classifier import prepare_training, train_classifier

TEST_PER_CLASS = 20
CLASSES = 10  # CIFAR-10: N train images are N / 10 per class
VAL_IMAGES = 200


def cut_archive(archive: Path, train_per_class: int, target: Path) -> Path:
    """A tarball with the first `train_per_class` train images of each class and a few test images per class."""
    kept: dict[tuple[str, str], int] = {}
    with tarfile.open(archive, "r:*") as source, tarfile.open(target, "w:gz") as out:
        for member in source:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) < 3 or parts[-3] not in ("train", "test"):
                continue
            key = (parts[-3], parts[-2])
            if kept.get(key, 0) < (train_per_class if key[0] == "train" else TEST_PER_CLASS):
                kept[key] = kept.get(key, 0) + 1
                out.addfile(member, source.extractfile(member))
    return target


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="ImageFolder tarball (train/<class>/*.jpg)")
    parser.add_argument(
        "--images", type=int, default=5000, help="N train images (N / 10 per class); the larger size is 2N"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    sizes = (args.images, 2 * args.images)
    params = load_section("train", TrainParams, args.params).model_copy(update={"epochs": 1})

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        archives = {n: cut_archive(args.archive, n // CLASSES, Path(tmp) / f"train-{n}.tar.gz") for n in sizes}
        fetched = {}
        for n in sizes:
            seconds, fetched[n] = timed(lambda n=n: read_archive(archives[n], params.image_size))
            rows.append({"step": "fetch (decode archive)", "images": n, "seconds": round(seconds, 2)})
    train = fetched[sizes[1]].splits["train"]
    # shuffled once, so both sizes hold every class (the archive is sorted by class)
    order = np.random.default_rng(0).permutation(len(train))
    val = train.subset(order[:VAL_IMAGES])
    for n in sizes:
        subset = train.subset(order[-n:])  # the last n of the shuffled 2N: never the validation images when n = N
        torch.manual_seed(0)
        setup = prepare_training("vit", "baseline", params, subset)
        seconds, _ = timed(lambda setup=setup, subset=subset: train_classifier(setup, subset, val, params, seed=0))
        rows.append(
            {
                "step": f"train_classifier (1 epoch, vit {params.image_size}px)",
                "images": len(subset),
                "seconds": round(seconds, 2),
            }
        )

    ratios = {}
    for step in dict.fromkeys(row["step"] for row in rows):
        small, large = (row for row in rows if row["step"] == step)
        ratios[step] = round(large["seconds"] / small["seconds"], 3)
    for row in rows:
        print(f"{row['seconds']:8.2f} s  {row['images']:6d} images  {row['step']}")
    for step, ratio in ratios.items():
        print(f"2N / N = {ratio:.2f}  {step}")
    save_bench(
        "scaling",
        {
            "machine": machine_info(),
            "versions": {"torch": torch.__version__},
            "command": f"python bench/scaling.py --archive {args.archive} --images {args.images}",
            "results": rows,
            "ratio_2n_over_n": ratios,
        },
    )


if __name__ == "__main__":
    main()
