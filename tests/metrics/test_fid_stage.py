"""The fid stage with (planted) Inception weights: it finishes at every N, says its N, and equals pytorch-fid's CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from synthaug.core.io import write_json
from synthaug.data.storage import ImageSet, save_image_set
from synthaug.models.checkpoint import save_classifier
from synthaug.models.classifiers import ClassifierSpec, build_classifier

from ..conftest import HANG_GUARD_S, ROOT
from ..planted import plant_in_torch_home

CLASSES = ("cat", "dog")


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch")
    plant_in_torch_home(home)
    return home


def images_of(per_class: int, shift: float, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = rng.normal(100 + shift, 40, (len(labels), 32, 32, 3))
    images[..., 0] += 60 * labels[:, None, None]
    return ImageSet(np.clip(images, 0, 255).astype(np.uint8), labels, CLASSES)


def make_project(root: Path, per_class: int, **fid) -> tuple[ImageSet, ImageSet]:
    """params.yaml, a real test split (decoded from JPEG, says meta.json), a generated evaluation set, a classifier."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fid"].update(
        {
            "kid_subsets": 5,
            "kid_subset_size": 50,
            "precision_recall_k": 3,
            "batch_size": 50,
            "device": "cpu",
            "inception_url": None,
            **fid,
        }
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    real, fake = images_of(per_class, 0.0, seed=0), images_of(per_class, 25.0, seed=1)
    save_image_set(root / "data/cifar10/test.npz", real)
    write_json(root / "data/cifar10/meta.json", {"encodings": {"JPEG": 2 * len(real)}, "lossy_images": 2 * len(real)})
    for run, shift in (("seed0", 25.0), ("seed1", 35.0)):  # two generator runs; the tests read seed0's
        images = fake if run == "seed0" else images_of(per_class, shift, seed=2)
        eval_set = root / "data/synthetic_eval/gan" / run
        eval_set.mkdir(parents=True)
        np.savez(eval_set / "shard-00000.npz", images=images.images, labels=images.labels)
        (eval_set / "metadata.csv").write_text("shard,class_index\n")
    spec = ClassifierSpec("cnn", len(CLASSES), 8, {"channels": [4], "dropout": 0.0})
    save_classifier(root / "models/classifiers/cnn-full/seed0", spec, build_classifier(spec).state_dict())
    return real, fake


def run_fid(root: Path, torch_home: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "TORCH_HOME": str(torch_home), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/fid.py"),
            "--generator",
            "gan",
            "--eval-set",
            "data/synthetic_eval/gan",
            "--data",
            "data/cifar10",
            "--feature-model",
            "models/classifiers/cnn-full/seed0",
            "--out",
            "metrics/fid/gan.json",
            "--detail",
            "metrics/detail/fid/gan.json",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stderr
    headline = json.loads((root / "metrics/fid/gan.json").read_text())
    detail = json.loads((root / "metrics/detail/fid/gan.json").read_text())
    assert set(headline) in ({"fid", "kid_mean"}, {"fid_classifier_features", "kid_mean_classifier_features"})
    assert list(detail["runs"]) == ["seed0", "seed1"] and detail["device"] == "cpu"
    for key, value in headline.items():  # dvc metrics show: the mean over the generator runs
        assert value == pytest.approx(np.mean([run[key] for run in detail["runs"].values()]))
    assert detail["runs"]["seed0"][next(iter(headline))] != detail["runs"]["seed1"][next(iter(headline))]
    return result, detail["runs"]["seed0"]


def test_small_sets_finish_and_say_their_n_and_rank(tmp_path, torch_home):
    make_project(tmp_path, per_class=10, feature_extractor="inception", dims=2048)
    result, scores = run_fid(tmp_path, torch_home)
    assert scores["features"] == "inception" and scores["inception_unavailable"] is None
    assert (scores["fid_dims"], scores["fid_images"], scores["fid_full_rank"]) == (2048, 20, False)
    assert np.isfinite(scores["fid"]) and scores["fid"] > 0 and np.isfinite(scores["kid_mean"])
    assert scores["real_images_lossy"] is True and scores["real_image_encodings"] == {"JPEG": 40}
    assert len(scores["inception_sha256"]) == 64
    assert set(scores["per_class"]["cat"]) == {
        "images",
        "kid_mean",
        "kid_std",
        "real_classifier_recall_on_generated",
        "diversity_ratio",
        "near_duplicate_fraction",
        "collapsed",
        "recognition",
        "false_recognition",
        "recognition_margin",
        "recognition_margin_low",
        "recognition_margin_high",
        "recognition_p_value",
        "recognized",
        "usable",
    }
    confusion = np.array(scores["judge_confusion"])
    assert confusion.shape == (2, 2) and confusion.sum() == scores["images"] == 20
    cat = scores["per_class"]["cat"]
    assert cat["recognition"] == pytest.approx(cat["real_classifier_recall_on_generated"])
    assert cat["usable"] == (cat["recognized"] and not cat["collapsed"])
    assert set(scores["unusable_classes"]) == {c for c, e in scores["per_class"].items() if not e["usable"]}
    assert 0 < scores["diversity_ratio"] and isinstance(scores["collapsed_classes"], list)
    assert "2048-d, 20 images per side, rank-deficient: not comparable to published FID" in result.stdout


def test_stage_fid_equals_the_pytorch_fid_cli(tmp_path, torch_home):
    real, fake = make_project(tmp_path, per_class=50, feature_extractor="auto", dims=64)
    _, scores = run_fid(tmp_path, torch_home)
    assert (scores["features"], scores["fid_dims"], scores["fid_images"], scores["fid_full_rank"]) == (
        "inception",
        64,
        100,
        True,
    )
    for name, images in (("real", real), ("fake", fake)):
        folder = tmp_path / "png" / name
        folder.mkdir(parents=True)
        for index, pixels in enumerate(images.images):
            Image.fromarray(pixels).save(folder / f"{index:04d}.png")
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytorch_fid",
            str(tmp_path / "png/real"),
            str(tmp_path / "png/fake"),
            "--dims",
            "64",
            "--device",
            "cpu",
            "--num-workers",
            "0",
            "--batch-size",
            "50",
        ],
        env={**os.environ, "TORCH_HOME": str(torch_home)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert cli.returncode == 0, cli.stderr
    cli_fid = float(re.search(r"FID:\s+(\S+)", cli.stdout).group(1))
    assert cli_fid > 0 and scores["fid"] == pytest.approx(cli_fid, rel=1e-4)


def test_auto_falls_back_to_classifier_features_and_says_why(tmp_path):
    make_project(
        tmp_path, per_class=10, feature_extractor="auto", dims=2048, inception_url="http://127.0.0.1:9/none.pth"
    )
    _, scores = run_fid(tmp_path, tmp_path / "empty-torch-home")
    assert scores["features"] == "classifier:cnn-full-seed0" and "fid" not in scores
    assert scores["inception_unavailable"].startswith("fid.inception_url: cannot fetch http://127.0.0.1:9/none.pth")
    assert scores["fid_dims"] == 4 and scores["fid_full_rank"] is True  # the CNN's 4 head inputs, 20 images
    assert np.isfinite(scores["fid_classifier_features"])
