"""Which generator run serves which seed, and where its folder is."""

from __future__ import annotations

import pytest

from synthaug.core.generator_runs import (
    SHARED_RUN,
    generator_run,
    generator_run_seed,
    generator_runs,
    run_folder,
    run_folders,
)


def test_per_seed_runs_are_independent_draws_and_a_shared_run_keeps_the_section_seed():
    assert generator_runs("per_seed", [2, 0, 1]) == ["seed2", "seed0", "seed1"]
    assert generator_runs("shared", [0, 1, 2]) == [SHARED_RUN]
    assert generator_run("per_seed", 3) == "seed3" and generator_run("shared", 3) == SHARED_RUN
    assert generator_run_seed(7, SHARED_RUN) == 7  # what a single run always used
    seeds = {generator_run_seed(7, f"seed{k}") for k in range(3)}
    assert len(seeds) == 3 and 7 not in seeds
    assert generator_run_seed(7, "seed1") == generator_run_seed(7, "seed1")  # stable across calls
    assert generator_run_seed(8, "seed1") != generator_run_seed(7, "seed1")


def test_a_seed_reads_its_own_run_else_the_shared_one_else_fails_naming_the_folder(tmp_path):
    per_seed, shared = tmp_path / "per_seed", tmp_path / "shared_only"
    for name in ("seed10", "seed2", "seed0", ".seed1.partial", "notes"):
        (per_seed / name).mkdir(parents=True)
    (shared / SHARED_RUN).mkdir(parents=True)
    assert list(run_folders(per_seed)) == ["seed0", "seed2", "seed10"]  # by seed, work folders and others skipped
    assert run_folder(per_seed, 2) == per_seed / "seed2"
    assert run_folder(shared, 2) == shared / SHARED_RUN
    with pytest.raises(
        FileNotFoundError, match=r"per_seed: no generator run for seed 1 \(neither seed1/ nor shared/\)"
    ):
        run_folder(per_seed, 1)
    assert run_folders(tmp_path / "absent") == {}
