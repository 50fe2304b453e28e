"""The README's first hour: `make demo ARCHIVE=...` remembers the archive for the clone, so the next
`dvc exp run -S ...` reads the same archive and reruns no fetch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from ..conftest import ROOT
from .project import run, tiny_project

pytestmark = pytest.mark.e2e

TARGET = "imbalance"  # the stage after fetch: a later command that rereads the archive would rerun fetch first


def test_make_demo_with_an_archive_writes_it_to_the_local_settings_first():
    recipe = subprocess.run(
        ["make", "-n", "demo", "ARCHIVE=some/cifar.tar.gz"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    local = [i for i, line in enumerate(recipe) if "synthaug local 'fetch.archive=" in line]
    assert local and f"fetch.archive={ROOT / 'some/cifar.tar.gz'}'" in recipe[local[0]]
    assert recipe.index("dvc exp run") > local[0]  # a plain `dvc exp run` composes the local settings in


def test_a_later_exp_run_keeps_the_archive_and_reruns_no_fetch(tmp_path):
    repo, env = tiny_project(tmp_path, ["gan"], ["baseline", "full"], [0], archive_in_preset=False)
    archive = tmp_path / "tiny.tar.gz"
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tiny project"], repo, env)
    # what `make demo ARCHIVE=...` runs, then the README's next command
    run([sys.executable, "-m", "synthaug.tools.cli", "local", f"fetch.archive={archive}"], repo, env)
    run(["git", "check-ignore", "-q", "conf/local/settings.yaml"], repo, env)  # the clone's own, never committed
    first = run(["dvc", "exp", "run", TARGET], repo, env)
    assert "Running stage 'fetch'" in first.stdout and "Running stage 'imbalance'" in first.stdout
    second = run(["dvc", "exp", "run", "-S", "train.lr=0.01", TARGET], repo, env)
    assert "Running stage 'fetch'" not in second.stdout and "Running stage 'imbalance'" not in second.stdout
    assert "Stage 'fetch' didn't change, skipping" in second.stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["fetch"]["archive"] == str(archive) and params["train"]["lr"] == 0.01
    shown = run(["dvc", "exp", "show", "--csv"], repo, env).stdout
    assert str(archive) in shown  # `dvc exp show` shows which archive each experiment read
