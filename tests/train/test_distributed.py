"""train_classifier under torchrun with 2 CPU processes (gloo DDP) against the same stage run plainly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from synthaug.core.distributed import Ranks, rank_share, sum_over_ranks
from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays

from ..conftest import HANG_GUARD_S, ROOT, finished_stage_runs, stage_env

STAGE = str(ROOT / "stages" / "train_classifier.py")


def test_one_rank_needs_no_process_group():
    ranks = Ranks()
    assert not ranks.distributed and ranks.is_main
    assert rank_share(np.arange(5), ranks).tolist() == [0, 1, 2, 3, 4]
    assert sum_over_ranks(np.array([1, 2]), ranks).tolist() == [1.0, 2.0]
    # two ranks share a batch of 5 as 3 + 2, interleaved, nothing lost or repeated
    shares = [rank_share(np.arange(5), Ranks(rank, 2)).tolist() for rank in (0, 1)]
    assert shares == [[0, 2, 4], [1, 3]]


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 16)
    # class-coloured noise: learnable in a few steps, so the two runs must agree on something non-trivial
    images = (
        rng.integers(0, 60, (48, 8, 8, 3)) + 60 * labels[:, None, None, None] * np.eye(3)[labels % 3][:, None, None, :]
    )
    save_image_set(
        tmp_path / "data/train.npz", ImageSet(images.astype(np.uint8), labels.astype(np.int64), ("a", "b", "c"))
    )
    val = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(3)])
    train = np.setdiff1d(np.arange(48), val)
    save_index_arrays(tmp_path / "splits.npz", {"train": train, "val": val, "full": train})
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    save_image_set(
        tmp_path / "data/test.npz",
        ImageSet(images[val].astype(np.uint8), labels[val].astype(np.int64), ("a", "b", "c")),
    )
    params["experiment"]["seeds"] = [0]
    params["train"].update(
        epochs=2,
        batch_size=9,  # 5 + 4 per rank: the loss weighting matters
        lr=3e-3,
        image_size=8,
        eval_batch_size=5,
        augment_p=0.5,
        vit={
            **params["train"]["vit"],
            "patch_size": 4,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "intermediate_size": 64,
        },
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def train(
    project: Path, out: str, launcher: list[str], variant: str = "baseline", splits: str = "splits.npz"
) -> subprocess.CompletedProcess:
    env = stage_env(project)
    args = [
        "--classifier",
        "vit",
        "--variant",
        variant,
        "--data",
        "data",
        "--splits",
        splits,
        *(
            part
            for kind in (
                "model",
                "summary",
                "summary-detail",
                "curves",
                "scores",
                "scores-detail",
                "predictions",
                "confusion",
            )
            for part in (f"--{kind}", f"{out}/{kind}")
        ),
    ]
    result = subprocess.run(
        [*launcher, STAGE, *args], cwd=project, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_gloo_processes_train_what_one_process_trains(project):
    train(project, "one", [sys.executable])
    two = train(
        project, "two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    )
    assert "rank 1 of 2 done" in two.stdout + two.stderr
    single, ddp = (load_file(project / f"{out}/model/seed0/model.safetensors") for out in ("one", "two"))
    assert single.keys() == ddp.keys()
    # same batches, same augmentation stream, gradient averaged over the global batch: equal up to float rounding
    for key in single:
        np.testing.assert_allclose(ddp[key], single[key], atol=2e-4, err_msg=key)
    history = {out: (project / f"{out}/curves/seed0.csv").read_text().splitlines() for out in ("one", "two")}
    assert len(history["two"]) == 3  # header + 2 epochs
    for row_one, row_two in zip(history["one"][1:], history["two"][1:]):
        epoch, lr, loss, accuracy, val_accuracy, val_f1 = map(float, row_two.split(","))
        expected = list(map(float, row_one.split(",")))
        # train loss / accuracy summed over ranks, validation confusion summed over ranks
        assert [epoch, lr, accuracy, val_accuracy, val_f1] == [expected[0], expected[1], *expected[3:]]
        assert loss == pytest.approx(expected[2], abs=1e-4)
    summary = json.loads((project / "two/summary-detail/seed0.json").read_text())
    assert summary["train_images"] == 36  # every image counted once, not once per rank
    assert not (project / "two/.model.partial/seed0").exists()
    assert len(finished_stage_runs(project / "mlflow.db")) == 2  # one per invocation: rank 1 logs nothing


def test_loss_variant_trains_the_imbalanced_set_with_its_own_loss(project):
    with np.load(project / "splits.npz") as arrays:
        splits = dict(arrays)
    splits["train"] = splits["train"][10:]  # class a keeps 2 of its 12 images: the prior is no longer uniform
    save_index_arrays(project / "imbalanced.npz", splits)
    train(project, "plain", [sys.executable], splits="imbalanced.npz")
    train(project, "adjusted", [sys.executable], variant="logit_adjusted", splits="imbalanced.npz")
    summaries = [
        json.loads((project / f"{out}/summary-detail/seed0.json").read_text()) for out in ("plain", "adjusted")
    ]
    assert [s["train_images"] for s in summaries] == [26, 26]  # the baseline's images
    plain, adjusted = (load_file(project / f"{out}/model/seed0/model.safetensors") for out in ("plain", "adjusted"))
    # same seed, same batches: only the loss differs, by more than float rounding
    assert max(np.abs(plain[key] - adjusted[key]).max() for key in plain) > 1e-3
