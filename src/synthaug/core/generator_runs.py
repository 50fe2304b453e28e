"""Which generator run serves which experiment seed, and where its folders are.

Each generator output (models/generators/<g>, data/synthetic/<g>, data/synthetic_eval/<g>, their metrics) holds one
folder per run: `seed<k>` when experiment.generator_runs is per_seed, `shared` when one run serves every seed.
"""

from __future__ import annotations

import re
from pathlib import Path

from synthaug.core.seeding import derive_seed

SHARED_RUN = "shared"
RUN_FOLDER = re.compile(r"^(seed(?P<seed>\d+)|shared)$")


def generator_run(mode: str, seed: int) -> str:
    """The run (folder name) whose generator serves experiment seed `seed` under experiment.generator_runs `mode`:
    `seed<k>` for per_seed, `shared` for shared."""
    return f"seed{seed}" if mode == "per_seed" else SHARED_RUN


def generator_runs(mode: str, seeds: list[int]) -> list[str]:
    """Every run the seeds use, in seed order."""
    return list(dict.fromkeys(generator_run(mode, seed) for seed in seeds))


def generator_run_seed(base: int, run: str) -> int:
    """One run's seed: the section's own seed for the shared run (as a single run always had), else derived from
    it and the experiment seed, so that each seed's generator is an independent draw."""
    if run == SHARED_RUN:
        return base
    return derive_seed(base, "generator_run", int(run.removeprefix("seed")))


def run_folders(root: Path) -> dict[str, Path]:
    """The run folders a generator output holds, shared first, then by seed."""
    found = [p for p in Path(root).iterdir() if p.is_dir() and RUN_FOLDER.match(p.name)] if Path(root).is_dir() else []
    return {p.name: p for p in sorted(found, key=lambda p: run_order(p.name))}


def run_order(run: str) -> int:
    """Where a run folder sorts: shared first, then seed<k> by k."""
    match = RUN_FOLDER.match(run)
    return -1 if match is None or run == SHARED_RUN else int(match["seed"])


def run_folder(root: Path, seed: int) -> Path:
    """The folder of the run that serves `seed`: its own when the output has per-seed runs, else the shared one."""
    for name in (f"seed{seed}", SHARED_RUN):
        if (Path(root) / name).is_dir():
            return Path(root) / name
    raise FileNotFoundError(f"{root}: no generator run for seed {seed} (neither seed{seed}/ nor {SHARED_RUN}/)")
