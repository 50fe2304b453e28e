"""Stage entry points as users meet them: --help, and one-line errors that leave no output behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, make_image_folder

STAGES = sorted(path.stem for path in (ROOT / "stages").glob("*.py"))


def run_stage(stage: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db"}
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage, tmp_path):
    result = run_stage(stage, ["--help"], tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage:")
    assert "DVC stage" in result.stdout


def write_params(cwd: Path, **fetch_overrides) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fetch"].update(fetch_overrides)
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))


def test_unknown_param_fails_before_work_in_one_line(tmp_path):
    write_params(tmp_path, archiv="typo")
    result = run_stage("fetch", ["data/cifar10"], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("fetch: error: params.yaml: fetch.archiv: unknown key (allowed: archive,")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


def test_corrupt_image_fails_naming_it_and_leaves_no_output(tmp_path):
    images = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=2, test_per_class=1)
    (images / "test" / "a" / "zz-bad.png").write_bytes(b"\x89PNG garbage")
    write_params(tmp_path, archive=str(images), image_size=8)
    result = run_stage("fetch", ["data/cifar10"], tmp_path)
    assert result.returncode == 1
    assert "test/a/zz-bad.png: cannot decode image" in result.stderr.strip().splitlines()[-1]
    leftovers = [p for p in (tmp_path / "data").rglob("*")] if (tmp_path / "data").exists() else []
    assert leftovers == []  # neither the output nor a temporary sibling of it


def test_fetch_writes_compact_splits(tmp_path):
    images = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=3, test_per_class=2)
    write_params(tmp_path, archive=str(images), image_size=8)
    result = run_stage("fetch", ["out"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.json", "test.npz", "train.npz"]
    assert "fetch: done in" in result.stdout and "'train_images': 6" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_stage_leaves_no_partial_output(tmp_path, signum):
    script = tmp_path / "slow_stage.py"
    script.write_text(
        "import time\n"
        "from synthaug.core.runner import run_stage\n"
        "from synthaug.core.io import atomic_path\n"
        "def main():\n"
        "    with atomic_path('out', directory=True) as tmp:\n"
        "        (tmp / 'half.bin').write_bytes(b'x' * 1000)\n"
        "        print('writing', flush=True)\n"
        "        time.sleep(60)\n"
        "    return 'never'\n"
        "run_stage('slow', main)\n"
    )
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signum)
    assert process.wait(timeout=30) != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow_stage.py"]


def test_fetch_fails_early_when_the_disk_is_full(tmp_path, monkeypatch, capsys):
    import runpy
    import shutil
    from collections import namedtuple

    images = make_image_folder(tmp_path / "images", classes=("a", "b"), train_per_class=3, test_per_class=2)
    write_params(tmp_path, archive=str(images), image_size=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: namedtuple("usage", "total used free")(2**30, 2**30, 0))
    monkeypatch.setattr(sys, "argv", ["fetch.py", "data/cifar10"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "stages" / "fetch.py"), run_name="__main__")
    assert exit_info.value.code == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("fetch: error: fetch needs about 0.0 MiB free in") and "only 0.0 MiB are" in message
    assert not (tmp_path / "data").exists()
