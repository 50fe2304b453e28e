"""bench/gpu_check.py --cpu-smoke: the GPU check's every path at tiny sizes, so it cannot rot before a GPU comes."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import HANG_GUARD_S, ROOT


def test_gpu_check_cpu_smoke_runs_every_path(tmp_path):
    out, summary = tmp_path / "gpu_check.json", tmp_path / "bench.json"
    result = subprocess.run(
        # a budget with room: the smoke run shares the CI machine's two cores with the other test worker
        [sys.executable, "bench/gpu_check.py", "--cpu-smoke", "--budget-s", "600", "--out", str(out)]
        + ["--summary", str(summary)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = json.loads(out.read_text())
    assert json.loads(summary.read_text())["gpu_check"] == check

    # SDXL-Turbo through the stage's backend, text-only and guided, along the fast path (compile is GPU-only)
    measured = {(row["pipeline"], row["path"]) for row in check["sdxl"] if row.get("images_per_s", 0) > 0}
    paths = ("fp16 eager", "+ channels_last", "+ fused QKV")
    assert measured == {(pipeline, path) for pipeline in ("sdxl_turbo", "sdxl_turbo+controlnet") for path in paths}
    trained = {(row["case"], row["mode"]) for row in check["training"] if row.get("steps_per_s", 0) > 0}
    assert trained == {("gan", "fp32 eager"), ("ddpm", "fp32 eager"), ("vit", "bf16 eager"), ("vit", "bf16 compiled")}

    # the reference preset's DAG ran end to end, through SDXL-Turbo, CAS, fid and the report
    dag = check["dag"]
    assert dag["finished"] and dag["overrides"][0] == "preset=reference"
    assert {
        "fetch",
        "imbalance",
        "synthesize@sdxl_turbo",
        "train_classifier@vit-baseline",
        "train_synthetic@vit-synthetic-sdxl_turbo",
        "train_synthetic@vit-synthetic_only-sdxl_turbo",
        "fid@sdxl_turbo",
        "report",
    } <= set(dag["stages"])
    assert dag["report_headline"].startswith("| vit | baseline | 1 |")
    assert "target >= 40" in result.stdout and "<= 15 min" in result.stdout
