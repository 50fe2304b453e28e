"""Differentiable augmentation of a GAN discriminator's inputs (DiffAugment, Zhao et al. 2020).

The same random transforms go on real and generated images, in the discriminator's step and in the generator's,
so the discriminator never sees an image the generator could not be pushed towards, and the gradient reaches the
generator through them. The operations follow the paper's policy "color,translation,cutout" on images in [-1, 1]:
brightness, saturation and contrast jitter; a shift of up to 1/8 of the side, zero-filled; one zeroed square of
half the side. Each draw comes from the caller's generator, so a training run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(shape: tuple[int, ...], rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=rng).to(device=like.device, dtype=like.dtype)


def colour(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Brightness in [-0.5, 0.5], saturation x [0, 2], contrast x [0.5, 1.5], each per image."""
    count = images.shape[0]
    images = images + (_uniform((count, 1, 1, 1), rng, images) - 0.5)
    grey = images.mean(dim=1, keepdim=True)
    images = (images - grey) * (_uniform((count, 1, 1, 1), rng, images) * 2) + grey
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform((count, 1, 1, 1), rng, images) + 0.5) + mean


def translate(images: torch.Tensor, rng: torch.Generator, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by a whole number of pixels, up to `ratio` of its side each way; uncovered pixels are 0."""
    count, _, height, width = images.shape
    reach_y, reach_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-reach_y, reach_y + 1, (count, 1, 1), generator=rng).to(images.device)
    shift_x = torch.randint(-reach_x, reach_x + 1, (count, 1, 1), generator=rng).to(images.device)
    # read pixel (y + shift) of a copy padded with one zero row and column on every side: out of range lands there
    rows = (torch.arange(height, device=images.device).view(1, -1, 1) + shift_y + 1).clamp(0, height + 1)
    columns = (torch.arange(width, device=images.device).view(1, 1, -1) + shift_x + 1).clamp(0, width + 1)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    batch = torch.arange(count, device=images.device).view(-1, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, columns].permute(0, 3, 1, 2)


def cutout(images: torch.Tensor, rng: torch.Generator, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of `ratio` of the side per image, centred anywhere (it may overhang the border)."""
    count, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (count, 1, 1), generator=rng).to(images.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (count, 1, 1), generator=rng).to(images.device)
    rows = torch.arange(height, device=images.device).view(1, -1, 1)
    columns = torch.arange(width, device=images.device).view(1, 1, -1)
    inside = (
        (rows >= centre_y - size_y // 2)
        & (rows < centre_y - size_y // 2 + size_y)
        & (columns >= centre_x - size_x // 2)
        & (columns < centre_x - size_x // 2 + size_x)
    )
    return images * (~inside).unsqueeze(1).to(images.dtype)


OPERATIONS = {"color": colour, "translation": translate, "cutout": cutout}


def diff_augment(images: torch.Tensor, policy: Sequence[str], rng: torch.Generator) -> torch.Tensor:
    """Apply the policy's operations in order (an empty policy returns the images unchanged)."""
    for name in policy:
        images = OPERATIONS[name](images, rng)
    return images
