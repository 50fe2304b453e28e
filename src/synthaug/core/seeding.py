"""One place that makes a run deterministic for a given seed."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and force deterministic kernels where CUDA is present.

    torch's CPU kernels give the same result run after run for one thread count already; on the CPU its
    deterministic mode would only fill every new tensor with NaN (7 % of the demo ViT's training step on 2 cores)
    and import its compiler on the first call (1.8 s of every stage's start).
    """
    import torch  # here, not above: derive_seed's users (imbalance, the report) run without torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from (global seed, class, index, ...) so any item can be redone alone."""
    sequence = np.random.SeedSequence([abs(hash_part(p)) for p in parts])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1)


def hash_part(part: int | str) -> int:
    if isinstance(part, int):
        return part
    return int.from_bytes(part.encode("utf-8"), "little") % 2**63
