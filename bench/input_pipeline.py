"""Training input pipeline: the pipeline's batches against a seed-style DataLoader, side by side.

Reference (how the seeds fed their models): a torch Dataset that decodes each JPEG with PIL per
sample, converts it to numpy, applies the seed's albumentations and makes a tensor, batched by a
DataLoader with 2 workers. Pipeline: the decoded uint8 arrays `fetch` stores, the same albumentations
on each batch in the training process, one resize/normalize on the batch (what train_classifier
does). Both use the same augmentation probability and produce model-ready (N, 3, S, S) float batches.
Prints images/s and the ratio, and the ViT's own training images/s for comparison; writes
metrics/bench/input_pipeline.json.

    python bench/input_pipeline.py --archive ../shared/datasets/cifar10-jpg.tar.gz [--images 4096]
"""

from __future__ import annotations

import argparse
import io
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthaug.data.augment import augment_batch, seed_augmentations, to_model_input

from record import machine_info, save_bench


class EncodedImages(torch.utils.data.Dataset):
    """The seed-style dataset: JPEG bytes in, PIL decode + albumentations + tensor per sample."""

    def __init__(self, encoded: list[bytes], augment_p: float, image_size: int) -> None:
        self.encoded, self.augment_p, self.image_size = encoded, augment_p, image_size
        self.augment = None

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.augment is None:  # one per worker, seeded by the worker
            self.augment = seed_augmentations(self.augment_p, torch.initial_seed() % 2**31)
        pixels = np.array(Image.open(io.BytesIO(self.encoded[index])).convert("RGB"))
        return to_model_input(self.augment(image=pixels)["image"][None], self.image_size)[0]


def read_encoded(archive: Path, count: int) -> list[bytes]:
    encoded = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and "/train/" in f"/{member.name}" and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                encoded.append(tar.extractfile(member).read())
                if len(encoded) == count:
                    break
    return encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="ImageFolder tarball (train/<class>/*.jpg)")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="model input size (224 for the full profile)")
    parser.add_argument("--augment-p", type=float, default=0.5)
    args = parser.parse_args()

    encoded = read_encoded(args.archive, args.images)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(e)).convert("RGB")) for e in encoded])

    loader = torch.utils.data.DataLoader(
        EncodedImages(encoded, args.augment_p, args.image_size), batch_size=args.batch_size, shuffle=True, num_workers=2,
    )
    start = time.perf_counter()
    reference_count = sum(len(batch) for batch in loader)
    reference = reference_count / (time.perf_counter() - start)

    augment = seed_augmentations(args.augment_p, seed=0)
    order = np.random.default_rng(0).permutation(len(decoded))
    start = time.perf_counter()
    pipeline_count = 0
    for begin in range(0, len(order), args.batch_size):
        batch = to_model_input(augment_batch(decoded[order[begin : begin + args.batch_size]], augment), args.image_size)
        pipeline_count += len(batch)
    pipeline = pipeline_count / (time.perf_counter() - start)

    rows = [
        {"pipeline": "seed-style: PIL decode + albumentations per sample, DataLoader 2 workers", "images_per_second": round(reference, 1)},
        {"pipeline": "synthaug: stored uint8 arrays, albumentations per batch, batch resize", "images_per_second": round(pipeline, 1)},
    ]
    for row in rows:
        print(f"{row['images_per_second']:9.1f} images/s  {row['pipeline']}")
    print(f"ratio {pipeline / reference:.2f}x ({args.images} images, batch {args.batch_size}, {args.image_size} px, p={args.augment_p})")
    save_bench("input_pipeline", {
        "machine": machine_info(),
        "versions": {"torch": torch.__version__, "albumentations": __import__("albumentations").__version__},
        "command": f"python bench/input_pipeline.py --archive {args.archive} --images {args.images} --batch-size {args.batch_size} "
                   f"--image-size {args.image_size} --augment-p {args.augment_p}",
        "results": rows, "ratio": round(pipeline / reference, 3),
    })


if __name__ == "__main__":
    main()
