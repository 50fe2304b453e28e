"""A copy of the project with a tiny ImageFolder archive and a tiny preset, for tests that run the real DAG."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from synthaug.tools.compose import compose_params
from synthaug.tools.tiny import build_tiny_sdxl

from ..conftest import HANG_GUARD_S, ROOT, make_image_folder, tar_folder

PROJECT_FILES = [
    "dvc.yaml",
    "conf",
    "stages",
    "src",
    "metrics/sweeps/README.md",
    ".dvc/config",
    ".dvcignore",
    "cluster",
    ".gitignore",
]
TINY_PRESET = """# @package _global_
experiment:
  preset: tiny
  variants: {variants}
  generators: {generators}
  seeds: {seeds}
  distilled: {distilled}
  composed: {composed}
  careful: {careful}
fetch:
  archive: {archive}
  image_size: 8
imbalance:
  min_fraction: 0.3
  val_per_class: 4
  val_from: pool
  subset_per_class: null
train:
  epochs: 2
  schedule: linear
  select: best_val
  batch_size: 8
  lr: 3.0e-3
  image_size: 8
  eval_batch_size: 32
  vit: {{patch_size: 4, hidden_size: 32, num_hidden_layers: 2, intermediate_size: 64}}
  synthetic_filter: {{enabled: true, min_confidence: 0.0, judge: baseline}}
  distill: {{teacher: baseline}}
train_generator:
  log_every: 2
  checkpoint_every: 3
  sample_every: 3
  samples_per_class: 2
  ddpm: {{steps: 6, batch_size: 4, block_out_channels: [8, 16], layers_per_block: 1, attention: false,
         preview_steps: 2}}
  gan: {{steps: 6, batch_size: 4, latent_dim: 8, base_channels: 8}}
synthesize:
  shard_size: 4
  preview_per_class: 2
  eval_per_class: 4
{sdxl}  ddpm: {{steps: 2, guidance_scale: 2.0}}
fid:
  inception_url: null
  dims: 64
  kid_subsets: 5
  kid_subset_size: 10
  precision_recall_k: 2
  batch_size: 32
"""


SDXL_PRESET = """  sdxl_turbo: {{model: {model}, controlnet: {controlnet}, vae: null, resolution: 64, image_size: 16,
                batch_size: 4, device: cpu}}
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def tiny_project(
    base: Path,
    generators: list[str],
    variants: list[str],
    seeds: list[int],
    distilled: tuple[str, ...] = (),
    archive_in_preset: bool = True,
    composed: tuple[str, ...] = (),
    careful: tuple[str, ...] = (),
) -> tuple[Path, dict[str, str]]:
    """The project's files copied to base/repo with the tiny preset selected (no git repository yet), and the
    environment its commands run in: the copy's library, one thread, no MLflow or DVC settings of the caller.
    `distilled` students learn from the baseline entry; `composed` loss variants are also trained on each
    generator's images, and `careful` uses of them. The tiny archive is base/tiny.tar.gz; without
    archive_in_preset the preset leaves fetch.archive null, as the demo preset does."""
    archive = tar_folder(make_image_folder(base / "images", train_per_class=20, test_per_class=6), base / "tiny.tar.gz")
    repo = base / "repo"
    for name in PROJECT_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    shutil.rmtree(repo / "conf/local", ignore_errors=True)  # this checkout's own settings are not the copy's
    sdxl = ""
    if "sdxl_turbo" in generators:
        model, controlnet = build_tiny_sdxl(base / "tiny-sdxl")
        sdxl = SDXL_PRESET.format(model=model, controlnet=controlnet)
    preset = TINY_PRESET.format(
        archive=archive if archive_in_preset else "null",
        variants=f"[{', '.join(variants)}]",
        generators=f"[{', '.join(generators)}]",
        seeds=seeds,
        distilled=f"[{', '.join(distilled)}]",
        composed=f"[{', '.join(composed)}]",
        careful=f"[{', '.join(careful)}]",
        sdxl=sdxl,
    )
    (repo / "conf/preset/tiny.yaml").write_text(preset)
    config = (repo / "conf/config.yaml").read_text().replace("- preset: demo", "- preset: tiny")
    (repo / "conf/config.yaml").write_text(config)
    (repo / "params.yaml").write_text(yaml.safe_dump(compose_params(repo / "conf"), sort_keys=False))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),  # the copy's library, not the checkout's
        "TORCH_HOME": str(base / "torch"),
        "OMP_NUM_THREADS": "1",  # tiny models, and stages run beside the other pytest worker
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return repo, env


def push_to_new_origin(repo: Path, base: Path, env: dict[str, str]) -> Path:
    """What a team starts a cluster run from: repo committed with a directory DVC remote as its default remote
    (base/dvc-remote) and pushed to a bare git origin (base/origin.git), which this returns."""
    origin = base / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], base, env)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["dvc", "remote", "add", "-d", "shared", str(base / "dvc-remote")], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "the project, with a grid"], repo, env)
    run(["git", "remote", "add", "origin", str(origin)], repo, env)
    run(["git", "push", "-q", "origin", "main"], repo, env)
    return origin
