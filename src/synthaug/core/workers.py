"""Independent jobs of one stage run at once in worker processes that share this machine's CPU cores.

On a few CPU cores, small convolutions keep one process's threads from using every core: several single-threaded
processes do more work in the same time (docs/benchmarks.md has the measurement).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Result = TypeVar("Result")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, which a container or job scheduler may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_worker(processes: int) -> int:
    """torch threads for each of `processes` workers: an equal share of the cores, at least one."""
    return max(1, usable_cores() // processes)


def jobs_at_once(requested: int, jobs: int, device: str) -> int:
    """How many of `jobs` run at once: `requested` on the CPU; one at a time on a GPU
    (they would share its memory) and under a launcher (its ranks already share the work)."""
    from synthaug.core.distributed import launched

    if launched() or device != "cpu":
        return 1
    return max(1, min(requested, jobs))


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def map_in_processes(function: Callable[..., Result], calls: Sequence[tuple[Any, ...]], processes: int) -> list[Result]:
    """`function(*call)` for every call, in order, `processes` at a time in spawned worker processes of
    threads_per_worker(processes) torch threads each. `function` must be importable (module level), its arguments
    and result picklable. An exception in a worker is raised here, and the other workers are stopped."""
    processes = max(1, min(processes, len(calls)))
    context = multiprocessing.get_context("spawn")  # fork would copy torch's OpenMP pool, which may hang the child
    with context.Pool(processes, initializer=_start_worker, initargs=(threads_per_worker(processes),)) as pool:
        return pool.starmap(function, calls, chunksize=1)  # leaving the block terminates the workers
