"""bench/gpu_check.py --cpu-smoke: the GPU check's every path at tiny sizes, so it cannot rot before a GPU comes."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from .conftest import HANG_GUARD_S, ROOT


def test_gpu_check_cpu_smoke_runs_every_path(tmp_path):
    out, summary = tmp_path / "gpu_check.json", tmp_path / "bench.json"
    result = subprocess.run(
        # a budget with room: the smoke run shares the CI machine's two cores with the other test worker
        [sys.executable, "bench/gpu_check.py", "--cpu-smoke", "--budget-s", "600", "--out", str(out)]
        + ["--summary", str(summary), "--fail-step", "+ channels_last"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = json.loads(out.read_text())
    assert json.loads(summary.read_text())["gpu_check"] == check

    # SDXL-Turbo through the stage's backend, text-only and guided, along the speed-up params (compile is GPU-only);
    # the step made to fail is a row with its error, and the next step is still measured
    pipelines = ("sdxl_turbo", "sdxl_turbo+controlnet")
    measured = {(row["pipeline"], row["path"]) for row in check["sdxl"] if row.get("images_per_s", 0) > 0}
    assert measured == {(pipeline, path) for pipeline in pipelines for path in ("fp16 eager", "+ fuse_qkv")}
    failed = {(row["pipeline"], row["path"]): row["error"] for row in check["sdxl"] if "error" in row}
    assert failed == {(p, "+ channels_last"): "RuntimeError: --fail-step asked this step to fail" for p in pipelines}
    assert "failed: sdxl_turbo + channels_last: RuntimeError" in result.stdout
    assert check["gpu"] == {"driver": None, "torch_cuda": torch.version.cuda}
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


def test_gpu_check_real_checks_downloaded_weights_and_fails_on_broken_images(tmp_path):
    """--real on a folder laid out as `synthaug download` leaves it (fp16 files), then on one whose VAE gives NaN."""
    from diffusers import ControlNetModel, StableDiffusionXLPipeline

    from synthaug.tools.tiny import build_tiny_sdxl

    model, controlnet = build_tiny_sdxl(tmp_path / "tiny")
    real = tmp_path / "models"
    pipeline = StableDiffusionXLPipeline.from_pretrained(model)
    pipeline.save_pretrained(real / "model", variant="fp16")
    ControlNetModel.from_pretrained(controlnet).save_pretrained(real / "controlnet", variant="fp16")

    def check(folder):
        out = tmp_path / f"{folder.name}.json"
        command = [sys.executable, "bench/gpu_check.py", "--cpu-smoke", "--real", str(folder), "--out", str(out)]
        result = subprocess.run(
            [*command, "--summary", str(tmp_path / "bench.json")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
        )
        return result, json.loads(out.read_text())

    result, record = check(real)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    quality = {row["pipeline"]: row for row in record["sdxl"] if row["path"] == "quality"}
    assert set(quality) == {"sdxl_turbo", "sdxl_turbo+controlnet"}
    assert all(row["ok"] and row["images"] == 20 and row["min_pair_distance"] > 2 for row in quality.values())
    timed = {(row["pipeline"], row["batch"]) for row in record["sdxl"] if row.get("images_per_s", 0) > 0}
    assert timed >= {(p, b) for p in quality for b in (1, 2)} and "dag" not in record

    # a VAE whose decoder weights are NaN: every image is NaN, the check says so and fails, its JSON written
    from safetensors.torch import load_file, save_file

    weights = real / "model/vae/diffusion_pytorch_model.fp16.safetensors"
    tensors = load_file(weights)
    tensors["decoder.conv_out.bias"] = tensors["decoder.conv_out.bias"] * float("nan")
    save_file(tensors, weights)
    result, record = check(real)
    assert result.returncode != 0 and "broken images from the real weights" in result.stderr
    broken = [row["broken"] for row in record["sdxl"] if row["path"] == "quality"]
    assert broken and all(b.startswith("1 image(s) of class airplane are non-finite (NaN or inf)") for b in broken)
