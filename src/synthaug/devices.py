"""Device choice from a params value: auto picks CUDA when present; asking for a missing one fails clearly."""

from __future__ import annotations

import torch

from synthaug.errors import ModelLoadError


def resolve_device(device: str, key: str) -> torch.device:
    """`device` is auto | cpu | cuda; `key` is the params key named in the error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"{key}: cuda requested but no CUDA device is available")
    return torch.device(device)
