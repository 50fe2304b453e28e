"""The reference study's training augmentations behind one interface (Augmenter): albumentations per image, or
batched in torch (batch_augment.py), or none."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from synthaug.core.devices import to_device
from synthaug.core.distributed import Ranks, rank_share
from synthaug.core.params import AUGMENTATION_ENGINES
from synthaug.data.batch_augment import BatchAugmenter, check_stages
from synthaug.data.pixels import to_pixels

if TYPE_CHECKING:  # imported where used: a second of every train stage's start-up, and the torch engine is the default
    import albumentations as A

REFERENCE_STAGES = ("geometry", "color", "blur_noise")  # the reference study trained without occlusion


def reference_augmentations(
    p: float, seed: int, stages: Sequence[str] = REFERENCE_STAGES, image_size: int = 32
) -> A.Compose:
    """RandomResizedCrop back to `image_size` (crop, the CNN-vs-ViT study's), HorizontalFlip,
    RandomBrightnessContrast, HueSaturationValue, Rotate(10), GaussianBlur, GaussNoise, then CoarseDropout
    (occlusion), each with probability `p`, keeping those in `stages`.

    Arguments reproduce the albumentations 1.x defaults the reference study ran with, where 2.x changed them. The
    reference order is kept whatever the stages, so the reference set gives exactly the reference study's transform.
    """
    import albumentations as A
    import cv2

    check_stages(stages)
    staged = [
        ("crop", A.RandomResizedCrop(size=(image_size, image_size), p=p)),
        ("geometry", A.HorizontalFlip(p=p)),
        ("color", A.RandomBrightnessContrast(p=p)),
        ("color", A.HueSaturationValue(p=p)),
        ("geometry", A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=p)),
        ("blur_noise", A.GaussianBlur(blur_limit=(3, 7), p=p)),
        # 1.x var_limit=(10, 50) on 0..255 is a std of 3.2..7.1, i.e. 0.012..0.028 of the range.
        ("blur_noise", A.GaussNoise(std_range=(0.012, 0.028), p=p)),
        # Cutout-style occlusion: one or two holes of 10-25 % of the side, filled with black.
        (
            "occlusion",
            A.CoarseDropout(
                num_holes_range=(1, 2), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25), fill=0, p=p
            ),
        ),
    ]
    return A.Compose([transform for stage, transform in staged if stage in stages], seed=seed)


class Augmenter(Protocol):
    """How training batches become augmented pixels: the one interface of every augmentation engine."""

    def batch_pixels(self, images: np.ndarray, device: torch.device, ranks: Ranks = Ranks()) -> torch.Tensor:
        """This rank's share of the augmented global batch of uint8 (N, H, W, 3) images: float (n, 3, H, W) pixels
        0..255 on `device`, for data.pixels.normalize_pixels to turn into each model's input.

        Every rank augments the whole global batch with the same random stream, so its share is what one process
        would have trained on.
        """
        ...

    def get_state(self) -> list:
        """Every random generator, to resume exactly (set_state)."""
        ...

    def set_state(self, state: list) -> None: ...


class PlainBatches:
    """No augmentation (augment_p 0)."""

    def batch_pixels(self, images: np.ndarray, device: torch.device, ranks: Ranks = Ranks()) -> torch.Tensor:
        return to_device(to_pixels(rank_share(images, ranks)), device).float()

    def get_state(self) -> list:
        return []

    def set_state(self, state: list) -> None:
        pass


class AlbumentationsAugmenter:
    """The reference study's engine: albumentations, image by image on the CPU."""

    def __init__(self, transform: A.Compose) -> None:
        self.transform = transform

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.transform(image=image)["image"] for image in images])

    def batch_pixels(self, images: np.ndarray, device: torch.device, ranks: Ranks = Ranks()) -> torch.Tensor:
        return to_device(to_pixels(rank_share(self(images), ranks)), device).float()

    def get_state(self) -> list:
        transforms = (self.transform, *self.transform.transforms)
        return [(t.random_generator.bit_generator.state, t.py_random.getstate()) for t in transforms]

    def set_state(self, state: list) -> None:
        for transform, (numpy_state, python_state) in zip((self.transform, *self.transform.transforms), state):
            transform.random_generator.bit_generator.state = numpy_state
            transform.py_random.setstate(python_state)


def make_augmentation(
    engine: str, p: float, seed: int, stages: Sequence[str] = REFERENCE_STAGES, image_size: int = 32
) -> Augmenter:
    """The reference augmentations through `engine` ("torch": batched on the training device, "albumentations":
    per image on the CPU; the same distribution); no augmentation at p = 0."""
    if engine not in AUGMENTATION_ENGINES:
        raise ValueError(f"unknown augmentation engine {engine!r} (allowed: {', '.join(AUGMENTATION_ENGINES)})")
    if p <= 0:
        return PlainBatches()
    if engine == "torch":
        return BatchAugmenter(p, seed, tuple(stages))
    return AlbumentationsAugmenter(reference_augmentations(p, seed, stages, image_size))


def augment_batch(images: np.ndarray, transform: A.Compose) -> np.ndarray:
    """An albumentations transform on each image (tests and benchmarks compare engines with it)."""
    return AlbumentationsAugmenter(transform)(images)
