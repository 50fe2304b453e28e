"""A grid fanned out across machines the way DVC does it, on a real single-node Slurm cluster started here: a bare
git repository as origin, a directory DVC remote, cluster/slurm/submit.sh submitting the shared stages and then one
array task per grid point; each task works in its own clone and pushes its experiment; a third clone pulls both and
`synthaug sweep` collects them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ..conftest import HANG_GUARD_S, server_folder
from ..slurm import slurm_cluster, submitted_jobs, worker_times
from .project import push_to_new_origin, run, tiny_project

pytestmark = pytest.mark.e2e

GRID = "# two learning rates\ntrain.lr=0.001,0.003\n"
# No key of the grid reaches these: they run once, in the shared job.
SHARED = ["fetch", "imbalance", "train_generator@gan", "synthesize@gan"]
PER_POINT = ["train_classifier@vit-baseline", "train_classifier@vit-full", "train_synthetic@vit-synthetic-gan"]


@pytest.fixture(scope="module")
def slurm():
    with server_folder("synthaug-slurm-") as folder, slurm_cluster(folder) as cluster:
        yield cluster


def team_project(base: Path) -> tuple[Path, Path, dict[str, str]]:
    """The tiny project with a grid file, pushed to a bare origin, a directory DVC remote its default remote."""
    repo, env = tiny_project(base, ["gan"], ["baseline", "full"], [0])
    (repo / "grids").mkdir()
    (repo / "grids/lr.txt").write_text(GRID)
    return repo, push_to_new_origin(repo, base, env), env


def test_a_grid_fans_out_on_slurm_and_is_collected_in_a_third_clone(slurm, tmp_path):
    repo, origin, env = team_project(tmp_path)
    logs = tmp_path / "logs"
    worker_env = {
        **env,
        **slurm.env(),
        "SYNTHAUG_ORIGIN": str(origin),
        "SYNTHAUG_SCRATCH": str(tmp_path),
        "SYNTHAUG_LOGS": str(logs),
    }
    submitted = run(["cluster/slurm/submit.sh", "grids/lr.txt"], repo, worker_env).stdout
    shared_job, grid_job = submitted_jobs(submitted)
    states = slurm.wait([shared_job, grid_job], HANG_GUARD_S)
    texts = {path.name: path.read_text() for path in sorted(logs.iterdir())}
    assert states == {
        shared_job: ("COMPLETED", "0:0"),
        f"{grid_job}_0": ("COMPLETED", "0:0"),
        f"{grid_job}_1": ("COMPLETED", "0:0"),
    }, texts

    shared_log = texts[f"synthaug-grid-shared-{shared_job}.out"]
    for stage in SHARED:
        assert f"Running stage '{stage}'" in shared_log
    for stage in PER_POINT:
        assert f"Running stage '{stage}'" not in shared_log
    point_logs = [texts[f"synthaug-grid-{grid_job}_{task}.out"] for task in (0, 1)]
    for log in point_logs:
        for stage in SHARED:  # restored from the run-cache the shared job pushed, not run again
            assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in log
            assert f"Running stage '{stage}'" not in log
        for stage in PER_POINT:
            assert f"Running stage '{stage}'" in log
        assert "Pushed experiment" in log
    # The two points ran at the same time, each in its own clone (removed at exit).
    (start0, end0), (start1, end1) = (worker_times(log) for log in point_logs)
    assert max(start0, start1) < min(end0, end1)
    assert not list(tmp_path.glob("synthaug-*"))

    collector = tmp_path / "collector"
    run(["git", "clone", "-q", str(origin), str(collector)], tmp_path, env)
    collector_env = {**env, "PYTHONPATH": str(collector / "src")}
    run(["dvc", "exp", "pull", "origin", "--rev", "HEAD"], collector, collector_env)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], collector, collector_env).stdout)
    experiments = [exp for commit in shown for exp in commit.get("experiments") or []]
    assert len(experiments) == 2
    run(["synthaug", "sweep", "train.lr"], collector, collector_env)
    rows = list(csv.DictReader((collector / "metrics/sweeps/train.lr.csv").read_text().splitlines()))
    by_value = {float(row["value"]): row["experiments"] for row in rows if row["variant"] == "baseline"}
    assert by_value.keys() == {0.001, 0.003}
    assert sorted(by_value.values()) == sorted(exp["name"] for exp in experiments)
    # The pushed data comes with them: applying one experiment and pulling restores its checkpoint.
    name = experiments[0]["name"]
    run(["dvc", "exp", "apply", name], collector, collector_env)
    run(["dvc", "pull"], collector, collector_env)
    assert (collector / "models/classifiers/vit-baseline/seed0/model.safetensors").is_file()
