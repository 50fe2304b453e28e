"""The seed's training augmentations (albumentations) and uint8-to-tensor batching."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Images are scaled to [-1, 1]; the classifiers are trained from scratch, so no ImageNet statistics.
MEAN = 0.5
STD = 0.5


def seed_augmentations(p: float, seed: int) -> A.Compose:
    """HorizontalFlip, RandomBrightnessContrast, HueSaturationValue, Rotate(10), GaussianBlur, GaussNoise.

    Arguments reproduce the albumentations 1.x defaults the seed ran with, where 2.x changed them.
    """
    return A.Compose(
        [
            A.HorizontalFlip(p=p),
            A.RandomBrightnessContrast(p=p),
            A.HueSaturationValue(p=p),
            A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=p),
            A.GaussianBlur(blur_limit=(3, 7), p=p),
            # 1.x var_limit=(10, 50) on 0..255 is a std of 3.2..7.1, i.e. 0.012..0.028 of the range.
            A.GaussNoise(std_range=(0.012, 0.028), p=p),
        ],
        seed=seed,
    )


def augment_batch(images: np.ndarray, transform: A.Compose | None) -> np.ndarray:
    if transform is None:
        return images
    return np.stack([transform(image=image)["image"] for image in images])


def to_model_input(images: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalized float (N, 3, S, S); only the batch is ever converted to float."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if batch.shape[-1] != image_size or batch.shape[-2] != image_size:
        batch = F.interpolate(batch, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return batch.sub_(MEAN).div_(STD)
