"""What every pipeline process shares: OpenMP threads that yield a busy core, and an exit without teardown."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from synthaug.core.threads import WAIT_SETTINGS

from .conftest import ROOT

STAGES = sorted(path.stem for path in (ROOT / "stages").glob("*.py"))


def without_wait_settings(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in WAIT_SETTINGS}, **extra}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({}, "1000 None"), ({"GOMP_SPINCOUNT": "5"}, "5 None"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "None PASSIVE")],
)
def test_importing_synthaug_shortens_the_spin_unless_the_user_chose(extra, expected):
    code = "import os, synthaug; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=without_wait_settings(**extra), capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_imports_synthaug_before_torch(stage, tmp_path):
    """libgomp reads GOMP_SPINCOUNT once, when torch loads it."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "stages" / f"{stage}.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = re.findall(r"\|\s*(\S+)$", result.stderr, flags=re.MULTILINE)
    first = {name: imported.index(name) for name in ("synthaug", "torch") if name in imported}
    assert "synthaug" in first
    assert first["synthaug"] < first.get("torch", len(imported))


STAGE_SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from synthaug.core.runner import run_stage

def main():
    atexit.register(lambda: Path("atexit-ran").write_text("yes"))
    if sys.argv[1] == "thread":
        threading.Thread(target=lambda: (time.sleep(0.3), Path("thread-done").write_text("yes"))).start()
    sys.stdout.write("buffered, not flushed\\n")
    return "ok"

run_stage("quick", main, exit_process=True)
print("after run_stage")
"""


@pytest.mark.parametrize("mode", ["alone", "thread"])
def test_a_stage_exits_after_its_atexit_handlers_without_teardown(tmp_path, mode):
    script = tmp_path / "quick.py"
    script.write_text(STAGE_SCRIPT, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script), mode], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "buffered, not flushed" in result.stdout and "quick: done in" in result.stdout
    assert (tmp_path / "atexit-ran").read_text() == "yes"
    if mode == "alone":  # exited inside run_stage
        assert "after run_stage" not in result.stdout
    else:  # a running non-daemon thread is joined, as Python does
        assert "after run_stage" in result.stdout
        assert (tmp_path / "thread-done").read_text() == "yes"
