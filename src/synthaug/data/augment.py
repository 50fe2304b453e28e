"""The reference study's training augmentations (albumentations per image, or batched in torch) and
uint8-to-tensor batching."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from synthaug.data.batch_augment import BatchAugmenter, check_stages
from synthaug.params import AUGMENTATION_ENGINES

# Images are scaled to [-1, 1]; the classifiers are trained from scratch, so no ImageNet statistics.
MEAN = 0.5
STD = 0.5
REFERENCE_STAGES = ("geometry", "color", "blur_noise")  # the reference study trained without occlusion


def reference_augmentations(p: float, seed: int, stages: tuple[str, ...] | list[str] = REFERENCE_STAGES) -> A.Compose:
    """HorizontalFlip, RandomBrightnessContrast, HueSaturationValue, Rotate(10), GaussianBlur, GaussNoise,
    then CoarseDropout (occlusion), each with probability `p`, keeping those in `stages`.

    Arguments reproduce the albumentations 1.x defaults the reference study ran with, where 2.x changed them. The
    reference order is kept whatever the stages, so the reference set gives exactly the reference study's transform.
    """
    check_stages(stages)
    staged = [
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


Augmentation = A.Compose | BatchAugmenter | None


def make_augmentation(
    engine: str, p: float, seed: int, stages: tuple[str, ...] | list[str] = REFERENCE_STAGES
) -> Augmentation:
    """The reference augmentations through `engine` ("torch": batched, "albumentations": per image); None at p = 0."""
    if p <= 0:
        return None
    if engine == "torch":
        return BatchAugmenter(p, seed, tuple(stages))
    if engine == "albumentations":
        return reference_augmentations(p, seed, stages)
    raise ValueError(f"unknown augmentation engine {engine!r} (allowed: {', '.join(AUGMENTATION_ENGINES)})")


def augmentation_state(augment: Augmentation) -> list:
    """Every random generator of `augment`, to resume it exactly (see restore_augmentation_state)."""
    if augment is None:
        return []
    if isinstance(augment, BatchAugmenter):
        return [augment.get_state()]
    return [(t.random_generator.bit_generator.state, t.py_random.getstate()) for t in (augment, *augment.transforms)]


def restore_augmentation_state(augment: Augmentation, state: list) -> None:
    if isinstance(augment, BatchAugmenter):
        augment.set_state(state[0])
        return
    for transform, (numpy_state, python_state) in zip((augment, *augment.transforms) if augment else (), state):
        transform.random_generator.bit_generator.state = numpy_state
        transform.py_random.setstate(python_state)


def augment_batch(images: np.ndarray, transform: A.Compose | None) -> np.ndarray:
    if transform is None:
        return images
    return np.stack([transform(image=image)["image"] for image in images])


def resize_pixels(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    """Antialiased bilinear resize of whole-valued pixels 0..255 (N, 3, H, W) to S x S, float.

    On the CPU through torch's vectorized uint8 kernel (channels-last), about twice the float kernel's
    speed at 32 -> 224 px; its output is whole values, within one level of the float resize. On a GPU
    in float.
    """
    size = (image_size, image_size)
    if pixels.device.type != "cpu":
        return F.interpolate(pixels.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    small = pixels.to(torch.uint8).contiguous(memory_format=torch.channels_last)
    resized = F.interpolate(small, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.to(torch.float32, memory_format=torch.contiguous_format)


def normalize_pixels(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    """Whole-valued float pixels 0..255 (N, 3, H, W) -> the model's input (N, 3, S, S) in [-1, 1], same device."""
    if pixels.shape[-1] != image_size or pixels.shape[-2] != image_size:
        pixels = resize_pixels(pixels, image_size)
    return pixels.div(255.0).sub_(MEAN).div_(STD)


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, 3, H, W), contiguous (pinnable, and 4x less to copy than floats)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def to_model_input(images: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalized float (N, 3, S, S); only the batch is ever converted to float."""
    return normalize_pixels(to_pixels(images).float(), image_size)
