"""The real DAG: `dvc repro` on a copy of the project with a tiny ImageFolder and a tiny profile."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from synthaug.params import compose_params, validate_all
from synthaug.synth.tiny import build_tiny_sdxl

from ..conftest import ROOT, make_image_folder, tar_folder

pytestmark = pytest.mark.e2e

PROJECT_FILES = ["dvc.yaml", "conf", "stages", "src", ".dvc/config", ".dvcignore", ".gitignore"]
ENTRIES = ["vit-baseline-seed0", "vit-full-seed0", "vit-synthetic_sdxl_turbo-seed0"]

TINY_PROFILE = """# @package _global_
experiment:
  profile: tiny
  variants: [baseline, full]
  generators: [sdxl_turbo]
fetch:
  archive: {archive}
  image_size: 8
imbalance:
  min_fraction: 0.3
  val_per_class: 4
  subset_per_class: null
train:
  epochs: 2
  batch_size: 8
  lr: 3.0e-3
  image_size: 8
  eval_batch_size: 32
  vit: {{patch_size: 4, hidden_size: 32, num_hidden_layers: 2, intermediate_size: 64}}
  synthetic_filter: {{enabled: true, min_confidence: 0.0}}
synthesize:
  shard_size: 4
  preview_per_class: 2
  sdxl_turbo: {{model: {model}, controlnet: {controlnet}, vae: null, resolution: 64, batch_size: 4, device: cpu}}
evaluate:
  batch_size: 32
"""


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("e2e")
    archive = tar_folder(make_image_folder(base / "images", train_per_class=20, test_per_class=6), base / "tiny.tar.gz")
    repo = base / "repo"
    for name in PROJECT_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    model, controlnet = build_tiny_sdxl(base / "tiny-sdxl")
    (repo / "conf/profile/tiny.yaml").write_text(TINY_PROFILE.format(archive=archive, model=model, controlnet=controlnet))
    config = (repo / "conf/config.yaml").read_text().replace("- profile: demo", "- profile: tiny")
    (repo / "conf/config.yaml").write_text(config)
    (repo / "params.yaml").write_text(yaml.safe_dump(compose_params(repo / "conf"), sort_keys=False))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),  # the copy's library, not the checkout's
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "tiny project"], repo, env)
    run(["dvc", "repro"], repo, env)
    return repo, env


def read_metrics(repo: Path, entry: str) -> dict:
    return json.loads((repo / f"metrics/eval/{entry}/metrics.json").read_text())


def test_tiny_params_are_valid(pipeline_repo):
    repo, _ = pipeline_repo
    sections = validate_all(yaml.safe_load((repo / "params.yaml").read_text()))
    assert sections["experiment"].profile == "tiny"


def test_repro_writes_every_output(pipeline_repo):
    repo, _ = pipeline_repo
    meta = json.loads((repo / "data/cifar10/meta.json").read_text())
    assert meta["class_names"] == ["cat", "dog", "frog"] and meta["counts"] == {"train": 60, "test": 18}
    assert len(meta["sha256"]) == 64
    counts = json.loads((repo / "metrics/class_counts.json").read_text())
    assert counts["counts"]["val"] == {"cat": 4, "dog": 4, "frog": 4}
    # 20 per class, 4 held out for val, then linear keep fractions 0.3 .. 1.0 of the 16 left
    expected = [int(round(16 * f)) for f in np.linspace(0.3, 1.0, 3)]
    assert list(counts["counts"]["train"].values()) == expected == [5, 10, 16]
    for entry in ENTRIES:
        report = read_metrics(repo, entry)
        assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["macro_f1"] <= 1.0
        assert report["num_samples"] == 18 and set(report["per_class"]) == {"cat", "dog", "frog"}
        predictions = (repo / f"metrics/eval/{entry}/predictions.csv").read_text().splitlines()
        assert predictions[0] == "actual,predicted" and len(predictions) == 19
        assert (repo / f"metrics/eval/{entry}/confusion.png").read_bytes()[:4] == b"\x89PNG"
        assert (repo / f"models/classifiers/{entry}/model.safetensors").is_file()
        history = (repo / f"metrics/train/{entry}.csv").read_text().splitlines()
        assert len(history) == 3  # header + 2 epochs
    assert not list(repo.rglob(".*.tmp-*")), "temporary files left behind"
    assert not list(repo.rglob(".*.partial")), "generation work folder left behind"


def test_synthetic_images_rebalance_the_minority_classes(pipeline_repo):
    repo, _ = pipeline_repo
    summary = json.loads((repo / "metrics/synthetic/sdxl_turbo.json").read_text())
    assert summary["real_per_class"] == {"cat": 5, "dog": 10, "frog": 16}
    assert summary["synthetic_per_class"] == {"cat": 11, "dog": 6, "frog": 0}  # each class reaches 16
    shards = sorted((repo / "data/synthetic/sdxl_turbo").glob("shard-*.npz"))
    assert [s.name for s in shards] == [f"shard-{i:05d}.npz" for i in range(5)]  # 17 images, 4 per shard
    with np.load(shards[0]) as first:
        assert first["images"].shape == (4, 8, 8, 3) and first["images"].dtype == np.uint8
    rows = (repo / "data/synthetic/sdxl_turbo/metadata.csv").read_text().splitlines()
    assert rows[0] == "shard,class_index,class_name,index,seed,source_index,prompt,generator"
    assert len(rows) == 18 and rows[1].startswith("shard-00000.npz,0,cat,0,") and rows[1].endswith(",sdxl_turbo")
    assert sorted(p.name for p in (repo / "metrics/synthetic/sdxl_turbo").iterdir()) == ["cat.png", "dog.png"]
    trained = json.loads((repo / "metrics/train/vit-synthetic_sdxl_turbo-seed0.json").read_text())
    kept = trained["synthetic_images"]
    assert set(trained["synthetic_kept_fraction"]) == {"cat", "dog"}
    assert 0 <= kept <= 17 and trained["train_images"] == 31 + kept  # the real imbalanced set plus what was kept


def test_report_summarizes_every_variant(pipeline_repo, tmp_path):
    from ..browser import png_is_not_blank, render

    repo, _ = pipeline_repo
    markdown = (repo / "metrics/report.md").read_text()
    baseline = read_metrics(repo, "vit-baseline-seed0")
    assert f"| vit | baseline | 1 | {baseline['accuracy']:.4f} | {baseline['macro_f1']:.4f} |" in markdown
    assert "| vit | synthetic_sdxl_turbo | 1 |" in markdown and "+0.0000 |" in markdown
    assert sorted(p.name for p in (repo / "metrics/report").iterdir()) == [
        "class_counts.png", "confusion.png", "curves.png", "recall_vs_count.png"]
    page = (repo / "metrics/report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 + 2  # the report's figures + one preview per topped-up class
    dom = render((repo / "metrics/report.html").as_uri(), tmp_path / "report.png")
    assert "synthetic_sdxl_turbo" in dom and "<table>" in dom
    assert png_is_not_blank(tmp_path / "report.png")


def test_second_repro_is_a_noop(pipeline_repo):
    repo, env = pipeline_repo
    result = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in result.stdout
    assert "up to date" in result.stdout


def test_forced_rerun_is_byte_identical(pipeline_repo):
    repo, env = pipeline_repo
    entry = ENTRIES[0]
    outputs = [
        f"models/classifiers/{entry}/model.safetensors",
        f"metrics/train/{entry}.csv",
        f"metrics/train/{entry}.json",
        f"metrics/eval/{entry}/metrics.json",
        f"metrics/eval/{entry}/predictions.csv",
    ]
    outputs += sorted(str(p.relative_to(repo)) for p in (repo / "data/synthetic/sdxl_turbo").iterdir())
    before = {path: (repo / path).read_bytes() for path in outputs}
    for stage in ("synthesize@sdxl_turbo", "train_classifier@vit-baseline-0", "evaluate@vit-baseline-0"):
        result = run(["dvc", "repro", "--force", "--single-item", stage], repo, env)
        assert f"Running stage '{stage}'" in result.stdout
    assert {path: (repo / path).read_bytes() for path in outputs} == before


def test_runs_are_in_the_mlflow_store(pipeline_repo):
    repo, _ = pipeline_repo
    with sqlite3.connect(repo / "mlflow.db") as db:
        names = sorted({row[0] for row in db.execute("select name from runs where status = 'FINISHED'")})
        metrics = dict(db.execute(
            "select r.name, m.value from metrics m join runs r on r.run_uuid = m.run_uuid where m.key = 'test_macro_f1'"
        ).fetchall())
    assert names == sorted([
        "fetch", "imbalance", "synthesize/sdxl_turbo", "report",
        *(f"{stage}/vit-{variant}/seed0" for stage in ("train_classifier", "evaluate")
          for variant in ("baseline", "full", "synthetic_sdxl_turbo")),
    ])
    assert metrics["evaluate/vit-baseline/seed0"] == pytest.approx(read_metrics(repo, "vit-baseline-seed0")["macro_f1"])


def test_exp_run_with_changed_param_changes_metrics(pipeline_repo):
    repo, env = pipeline_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline results"], repo, env)
    before = {entry: read_metrics(repo, entry) for entry in ENTRIES}
    result = run(["dvc", "exp", "run", "-S", "train.lr=1e-5", "-S", "train.epochs=1"], repo, env)
    assert "Running stage 'train_classifier@vit-baseline-0'" in result.stdout
    assert "Running stage 'fetch'" not in result.stdout  # only what depends on train reruns
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["lr"] == 1e-5
    after = {entry: read_metrics(repo, entry) for entry in ENTRIES}
    assert after != before
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], repo, env).stdout)
    changed = diff[f"metrics/eval/{ENTRIES[0]}/metrics.json"]
    assert changed["accuracy"]["old"] == before[ENTRIES[0]]["accuracy"]
    assert changed["accuracy"]["new"] == after[ENTRIES[0]]["accuracy"]
    shown = run(["dvc", "exp", "show", "--csv"], repo, env).stdout
    assert "train.lr" in shown and "1e-05" in shown
