"""Several training or generation processes on one or more machines (`torchrun`, `accelerate launch`):
ranks, DDP, reductions.

A stage run by a launcher reads its rank from the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...);
run plainly, it is rank 0 of 1 and nothing here does any communication.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """Whether a launcher (torchrun, accelerate launch) started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_ranks() -> Ranks:
    """Join the process group the launcher describes (gloo on CPU, nccl on CUDA); one process: no group."""
    if not launched():
        return Ranks()
    if torch.cuda.is_available():  # one GPU per process on each machine: "cuda" then means this rank's
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


@contextmanager
def process_group() -> Iterator[Ranks]:
    """The launcher's process group for the block (init_ranks), left however the block ends."""
    ranks = init_ranks()
    try:
        yield ranks
    finally:
        close_ranks(ranks)


def rank_done(name: str, ranks: Ranks) -> str:
    """The summary line of a rank other than 0, which writes nothing."""
    return f"{name}: rank {ranks.rank} of {ranks.world_size} done"


def wait_for_ranks(ranks: Ranks) -> None:
    """Every rank reaches this point before any goes on (no-op on one process)."""
    if ranks.distributed:
        dist.barrier()


def close_ranks(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


Batch = TypeVar("Batch", np.ndarray, torch.Tensor)
Model = TypeVar("Model", bound=nn.Module)
Result = TypeVar("Result")


def main_rank_results(results: dict[str, Result | None]) -> dict[str, Result]:
    """What the main rank got from work that returns None on the other ranks (they only help make it)."""
    return {key: value for key, value in results.items() if value is not None}


def rank_share(batch: Batch, ranks: Ranks) -> Batch:
    """This rank's interleaved share of a global batch (sizes differ by at most one)."""
    return batch[ranks.rank :: ranks.world_size]


def sum_over_ranks(values: np.ndarray, ranks: Ranks) -> np.ndarray:
    """Element-wise sum of `values` over all ranks (float64, so counts stay exact)."""
    total = torch.from_numpy(np.asarray(values, dtype=np.float64).copy())
    if ranks.distributed:
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.numpy()


def share_weight(share: int, total: int, ranks: Ranks) -> float:
    """Factor for a loss averaged over this rank's `share` of a `total`-item global batch so that DDP's
    gradient average over ranks is the global batch's mean gradient (shares can differ by one)."""
    return share * ranks.world_size / total


def global_means(share_means: dict[str, float], share: int, total: int, ranks: Ranks) -> dict[str, float]:
    """Global-batch means from each rank's means over its share (one all-reduce; as is on one process)."""
    if not ranks.distributed:
        return share_means
    keys = sorted(share_means)
    sums = sum_over_ranks(np.array([share_means[key] * share for key in keys]), ranks)
    return {key: float(value / total) for key, value in zip(keys, sums)}


def wrap_for_ranks(model: nn.Module, ranks: Ranks) -> nn.Module:
    """DDP across ranks (it starts every rank from rank 0's weights); the model itself on one process."""
    return nn.parallel.DistributedDataParallel(model) if ranks.distributed else model


def sync_batch_norm_for_ranks(model: Model, ranks: Ranks) -> Model:
    """BatchNorm statistics over the global batch on CUDA (SyncBatchNorm, same state-dict keys). torch's
    SyncBatchNorm has no CPU kernel: on CPU ranks each normalize over their own share, as plain DDP does."""
    if ranks.distributed and next(model.parameters()).device.type == "cuda":
        return cast(Model, nn.SyncBatchNorm.convert_sync_batchnorm(model))  # the same module, its BatchNorms swapped
    return model
