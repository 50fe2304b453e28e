"""Training input pipeline: the pipeline's batches against a reference-style DataLoader, side by side.

Reference (how the reference study fed its models): a torch Dataset that decodes each JPEG with PIL per
sample, converts it to numpy, applies the reference study's albumentations and makes a tensor, batched by a
DataLoader with 2 workers. Pipeline: the decoded uint8 arrays `fetch` stores, batched and augmented
in the training process by each augmentation engine's own `batch_pixels` then normalized (as the training loop does)
(`train.augment_engine`: torch, batched; albumentations, per image). All use the same augmentations
and probability and produce model-ready (N, 3, S, S) float batches. Also times the demo ViT's training
step on such batches: the input pipeline should make at least twice what the model consumes.
Writes metrics/bench/input_pipeline.json.

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
import torch.nn.functional as F
import yaml
from PIL import Image

from record import machine_info, save_bench
from synthaug.core.param_rules import load_section, parse_section
from synthaug.core.params import TrainParams
from synthaug.data.augment import make_augmentation, reference_augmentations
from synthaug.data.pixels import InputFormat, normalize_pixels, to_model_input
from synthaug.data.storage import ImageSet
from synthaug.train.classifier import prepare_training


class EncodedImages(torch.utils.data.Dataset):
    """The reference-style dataset: JPEG bytes in, PIL decode + albumentations + tensor per sample."""

    def __init__(self, encoded: list[bytes], augment_p: float, image_size: int) -> None:
        self.encoded, self.augment_p, self.image_size = encoded, augment_p, image_size
        self.augment = None

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.augment is None:  # one per worker, seeded by the worker
            self.augment = reference_augmentations(self.augment_p, torch.initial_seed() % 2**31)
        pixels = np.array(Image.open(io.BytesIO(self.encoded[index])).convert("RGB"))
        return to_model_input(self.augment(image=pixels)["image"][None], InputFormat(self.image_size))[0]


def read_encoded(archive: Path, count: int) -> list[bytes]:
    encoded = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if (
                member.isfile()
                and "/train/" in f"/{member.name}"
                and member.name.lower().endswith((".jpg", ".jpeg", ".png"))
            ):
                encoded.append(tar.extractfile(member).read())
                if len(encoded) == count:
                    break
    return encoded


def images_per_second(make_batches, count: int) -> float:
    start = time.perf_counter()
    made = sum(len(batch) for batch in make_batches())
    assert made == count, (made, count)
    return count / (time.perf_counter() - start)


def model_train_params(image_size: int) -> TrainParams:
    """The reference study's ViT (conf/config.yaml, patch 16 at 224 px) at its size, else the demo's (params.yaml)."""
    full = yaml.safe_load(Path("conf/config.yaml").read_text(encoding="utf-8"))["train"]
    if image_size == full["image_size"]:
        return parse_section("train", full, TrainParams)
    return load_section("train", TrainParams).model_copy(update={"image_size": image_size})


def model_training_rate(params: TrainParams, batch_size: int, steps: int = 20) -> float:
    """Training images/s of the ViT of `params` on ready batches."""
    torch.manual_seed(0)
    image_size = params.image_size
    labels = torch.randint(0, 10, (batch_size,))
    setup = prepare_training(
        "vit",
        "baseline",
        params,
        ImageSet(np.zeros((batch_size, 1, 1, 3), np.uint8), labels.numpy(), tuple(map(str, range(10)))),
    )
    model = setup.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    inputs, labels = torch.randn(batch_size, 3, image_size, image_size, device=setup.device), labels.to(setup.device)

    def step() -> None:
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="ImageFolder tarball (train/<class>/*.jpg)")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="model input size (224 for the full preset)")
    parser.add_argument("--augment-p", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the images per pipeline; the median is kept")
    args = parser.parse_args()
    torch.manual_seed(0)

    encoded = read_encoded(args.archive, args.images)
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(e)).convert("RGB")) for e in encoded])
    order = np.random.default_rng(0).permutation(len(decoded))
    batches = [order[begin : begin + args.batch_size] for begin in range(0, len(order), args.batch_size)]
    cpu = torch.device("cpu")

    def reference_batches():
        return torch.utils.data.DataLoader(
            EncodedImages(encoded, args.augment_p, args.image_size),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=2,
        )

    def engine_batches(engine: str):
        augment = make_augmentation(engine, args.augment_p, seed=0)
        input_format = InputFormat(args.image_size)
        return lambda: (normalize_pixels(augment.batch_pixels(decoded[batch], cpu), input_format) for batch in batches)

    pipelines = {
        "reference-style: PIL decode + albumentations per sample, DataLoader 2 workers": reference_batches,
        "synthaug, augment_engine albumentations: stored uint8 arrays, albumentations per image": engine_batches(
            "albumentations"
        ),
        "synthaug, augment_engine torch: stored uint8 arrays, batched torch augmentations": engine_batches("torch"),
    }
    # rounds interleave the pipelines, so a busy moment of the machine hits all of them; medians reported
    rounds = [
        {name: images_per_second(make, len(decoded)) for name, make in pipelines.items()} for _ in range(args.rounds)
    ]
    rates = {name: float(np.median([r[name] for r in rounds])) for name in pipelines}
    reference, per_image, batched = rates.values()
    model_params = model_train_params(args.image_size)
    model = model_training_rate(model_params, args.batch_size)
    rows = [{"pipeline": name, "images_per_second": round(rate, 1)} for name, rate in rates.items()]
    rows.append(
        {
            "pipeline": f"the ViT's training step at {args.image_size} px, patch {model_params.vit.patch_size}"
            " (what the input feeds)",
            "images_per_second": round(model, 1),
        }
    )
    for row in rows:
        print(f"{row['images_per_second']:9.1f} images/s  {row['pipeline']}")
    ratios = {
        "torch engine / reference-style": round(batched / reference, 3),
        "albumentations engine / reference-style": round(per_image / reference, 3),
        "torch engine / model training": round(batched / model, 3),
    }
    for name, ratio in ratios.items():
        print(f"{ratio:6.2f}x  {name}")
    print(
        f"(median of {args.rounds} rounds; {args.images} images, batch {args.batch_size},"
        f" {args.image_size} px, p={args.augment_p}, "
        f"torch threads {torch.get_num_threads()})"
    )
    save_bench(
        "input_pipeline" if args.image_size == 32 else f"input_pipeline_{args.image_size}px",
        {
            "machine": machine_info(),
            "versions": {"torch": torch.__version__, "albumentations": __import__("albumentations").__version__},
            "command": f"python bench/input_pipeline.py --archive {args.archive}"
            f" --images {args.images} --batch-size {args.batch_size} "
            f"--image-size {args.image_size} --augment-p {args.augment_p} --rounds {args.rounds}",
            "results": rows,
            "ratios": ratios,
            "rounds": [{name: round(rate, 1) for name, rate in r.items()} for r in rounds],
        },
    )


if __name__ == "__main__":
    main()
