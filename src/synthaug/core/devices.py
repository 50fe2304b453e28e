"""Device choice from a params value (auto picks CUDA when present; a missing one fails clearly), and batch copies."""

from __future__ import annotations

import torch

from synthaug.core.errors import ModelLoadError


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU batch onto `device`: through pinned memory and a non-blocking copy on CUDA, as is on the CPU."""
    if device.type != "cuda":
        return batch
    return batch.pin_memory().to(device, non_blocking=True)


def resolve_device(device: str, key: str) -> torch.device:
    """`device` is auto | cpu | cuda; `key` is the params key named in the error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"{key}: cuda requested but no CUDA device is available")
    return torch.device(device)
