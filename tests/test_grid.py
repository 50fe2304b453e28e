"""Grids for several machines: the expansion `dvc exp run --queue` would make, the stages every point shares, the
outputs the run-cache needs, and the SkyPilot task that runs a point (parsed by SkyPilot itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from synthaug.core.errors import MissingInput, ParamsError
from synthaug.tools.grid import differing_keys, expand_grid, fixed_overrides, read_grid, shared_stages, touches

from .conftest import HANG_GUARD_S, ROOT

CHAIN = {  # a pipeline shaped like the project's: params per stage, upstream stages
    "fetch": ["fetch"],
    "imbalance": ["imbalance"],
    "train_generator@gan": ["train_generator.gan", "train_generator.seed"],
    "train_classifier@vit-baseline": ["experiment.seeds", "train.lr", "train.vit"],
    "fid@gan": ["fid"],
    "report": None,  # the whole params file
}
UPSTREAM = {
    "fetch": set(),
    "imbalance": {"fetch"},
    "train_generator@gan": {"fetch", "imbalance"},
    "train_classifier@vit-baseline": {"fetch", "imbalance"},
    "fid@gan": {"fetch", "imbalance", "train_generator@gan", "train_classifier@vit-baseline"},
    "report": set(CHAIN) - {"report"},
}


def test_a_grid_expands_into_every_combination_in_queue_order():
    points = expand_grid(["train.lr=1e-3,3e-3", "fetch.archive=/data/c.tar.gz", "train.label_smoothing=0,0.1"])
    assert points == [
        ["train.lr=0.001", "fetch.archive=/data/c.tar.gz", "train.label_smoothing=0"],
        ["train.lr=0.001", "fetch.archive=/data/c.tar.gz", "train.label_smoothing=0.1"],
        ["train.lr=0.003", "fetch.archive=/data/c.tar.gz", "train.label_smoothing=0"],
        ["train.lr=0.003", "fetch.archive=/data/c.tar.gz", "train.label_smoothing=0.1"],
    ]
    assert fixed_overrides(points) == ["fetch.archive=/data/c.tar.gz"]
    assert expand_grid(["train.augment_p=range(0,1.01,0.5)"]) == [
        ["train.augment_p=0.0"],
        ["train.augment_p=0.5"],
        ["train.augment_p=1.0"],
    ]


def test_a_bad_grid_is_one_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="other.yaml: only params.yaml keys"):
        expand_grid(["other.yaml:train.lr=1,2"])
    with pytest.raises(ParamsError, match="Glob override"):
        expand_grid(["preset=glob(*)"])
    with pytest.raises(MissingInput, match="no such grid file"):
        read_grid(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(ParamsError, match="holds no override"):
        read_grid(tmp_path / "empty.txt")
    (tmp_path / "grid.txt").write_text("# lr\ntrain.lr=1e-3,3e-3\n\n  train.epochs=2  \n")
    assert read_grid(tmp_path / "grid.txt") == ["train.lr=1e-3,3e-3", "train.epochs=2"]


def test_differing_keys_are_the_leaves_that_change():
    trees = [
        {"train": {"lr": 0.1, "vit": {"layers": 4}}, "fetch": {"archive": "a"}},
        {"train": {"lr": 0.2, "vit": {"layers": 4}}, "fetch": {"archive": "a"}},
        {"train": {"lr": 0.1, "vit": {"layers": 4}}, "fetch": {"archive": "a"}, "extra": {"k": 1}},
    ]
    assert differing_keys(trees) == {"train.lr", "extra.k"}
    assert differing_keys(trees[:1]) == set()


@pytest.mark.parametrize(
    "changed, shared",
    [
        ({"train.lr"}, ["fetch", "imbalance", "train_generator@gan"]),
        ({"train_generator.gan.steps"}, ["fetch", "imbalance", "train_classifier@vit-baseline"]),
        ({"imbalance.min_fraction"}, ["fetch"]),
        ({"fid.dims"}, ["fetch", "imbalance", "train_generator@gan", "train_classifier@vit-baseline"]),
        (set(), list(CHAIN)),
    ],
)
def test_shared_stages_are_those_no_changed_key_reaches(changed, shared):
    assert shared_stages(CHAIN, UPSTREAM, changed) == shared


def test_a_key_touches_its_section_and_its_subkeys():
    assert touches("train.lr", "train") and touches("train", "train.lr") and touches("train.lr", "train.lr")
    assert not touches("train.lr", "train.lr_end_factor") and not touches("train_generator.seed", "train")


def synthaug_grid(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthaug.tools.cli", "grid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )


def test_synthaug_grid_prints_arguments_for_dvc_exp_run(tmp_path):
    """The project's own DAG: a train.lr grid shares fetch, imbalance and the generators' stages; --point prints
    one point's `-S` arguments and --shared the fixed overrides and those stages, one word per line."""
    grid = tmp_path / "grid.txt"
    grid.write_text("train.lr=1e-3,3e-3\nfetch.archive=/data/c.tar.gz\n")
    count = synthaug_grid(ROOT, str(grid), "--count")
    assert count.returncode == 0 and count.stdout == "2\n", count.stderr
    point = synthaug_grid(ROOT, str(grid), "--point", "1")
    assert point.stdout.splitlines() == ["-S", "train.lr=0.003", "-S", "fetch.archive=/data/c.tar.gz"]
    shared = synthaug_grid(ROOT, str(grid), "--shared").stdout.splitlines()
    generators = yaml.safe_load((ROOT / "params.yaml").read_text())["experiment"]["generators"]
    assert shared[:2] == ["-S", "fetch.archive=/data/c.tar.gz"]
    assert set(shared[2:]) == {
        "fetch",
        "imbalance",
        *(f"train_generator@{g}" for g in generators),
        *(f"synthesize@{g}" for g in generators),
    }
    outside = synthaug_grid(ROOT, str(grid), "--point", "2")
    assert outside.returncode == 1 and outside.stderr.strip() == (
        f"synthaug grid: error: {grid}: point 2 is outside 0..1"
    )


def test_stages_a_grid_shares_can_be_restored_on_another_machine():
    """`dvc push --run-cache` pushes the run entries and the cached outputs, not uncached ones: a stage with an
    uncached output is rerun on every worker instead of restored."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("fetch", "imbalance", "train_generator", "synthesize", "profile_model"):
        body = stages[name].get("do", stages[name])
        uncached = [
            path
            for kind in ("outs", "metrics", "plots")
            for entry in body.get(kind, [])
            if isinstance(entry, dict)
            for path, options in entry.items()
            if options and options.get("cache") is False
        ]
        assert uncached == [], f"{name}: uncached outputs {uncached}"
    for name in ("train_classifier", "train_synthetic", "fid"):  # their plain outputs, at least: run-cache on one
        outs = stages[name].get("do", stages[name])["outs"]
        assert not [entry for entry in outs if isinstance(entry, dict)], f"{name}: an uncached plain output"


SKY_PYTHON = ROOT / ".venv-sky/bin/python"
PARSE_TASK = textwrap.dedent(
    """
    import json, sys
    import sky, yaml
    config = yaml.safe_load(open(sys.argv[1]))
    overrides = json.loads(sys.argv[2])
    try:
        task = sky.Task.from_yaml_config(config, env_overrides=list(overrides.items()) if overrides else None)
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
    else:
        resources = next(iter(task.resources))
        print(json.dumps({"name": task.name, "envs": task.envs, "setup": task.setup, "run": task.run,
                          "cpus": resources.cpus, "memory": resources.memory}))
    """
)


def parse_with_skypilot(overrides: dict[str, str]) -> dict:
    if not SKY_PYTHON.is_file():
        reason = "SkyPilot's environment is missing (make sky)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [str(SKY_PYTHON), "-c", PARSE_TASK, str(ROOT / "cluster/skypilot.yaml"), json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_skypilot_task_parses_and_runs_the_worker(tmp_path):
    missing = parse_with_skypilot({})
    assert "SYNTHAUG_ORIGIN" in missing["error"]
    task = parse_with_skypilot({"SYNTHAUG_ORIGIN": "git@example.org:team/synthaug.git", "POINT": "3"})
    assert task["name"] == "synthaug-grid" and task["cpus"] == "8+" and task["memory"] == "32+"
    assert task["envs"]["POINT"] == "3" and task["envs"]["SYNTHAUG_GRID"] == "cluster/grids/augment_p.txt"
    assert (ROOT / task["envs"]["SYNTHAUG_GRID"]).is_file()
    assert "make -C ~/synthaug-env install" in task["setup"]
    # The run section, with SkyPilot's environment, calls the worker with the point and the grid file.
    home = tmp_path / "home"
    worker = home / "synthaug-env/cluster/worker.sh"
    worker.parent.mkdir(parents=True)
    worker.write_text('#!/usr/bin/env bash\necho "$@|${MLFLOW_TRACKING_URI-unset}" > "$HOME/called"\n')
    worker.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **task["envs"]}
    subprocess.run(["bash", "-c", task["run"]], env=env, check=True, timeout=HANG_GUARD_S)
    assert (home / "called").read_text() == "3 cluster/grids/augment_p.txt|unset\n"
    env["MLFLOW_TRACKING_URI"] = "http://mlflow.team:5000"
    subprocess.run(["bash", "-c", task["run"]], env=env, check=True, timeout=HANG_GUARD_S)
    assert (home / "called").read_text() == "3 cluster/grids/augment_p.txt|http://mlflow.team:5000\n"
