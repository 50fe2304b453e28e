"""uint8 images to model input: channel order, resizing and the [-1, 1] scale every classifier reads."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Images are scaled to [-1, 1]; the classifiers are trained from scratch, so no ImageNet statistics.
MEAN = 0.5
STD = 0.5


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
