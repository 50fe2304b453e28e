"""synthesize under torchrun with 2 CPU processes: each makes its share of the shards, the result is one process's."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synthaug.core.generator_params import TrainGeneratorParams
from synthaug.core.generator_runs import generator_run_seed
from synthaug.core.io import write_json
from synthaug.core.param_rules import parse_section
from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays
from synthaug.generators.backends import GENERATOR_FILE
from synthaug.generators.training import build_trainer

from ..conftest import HANG_GUARD_S, ROOT, stage_env

CLASSES = ("cat", "dog", "frog")


@pytest.fixture
def project(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [3, 6, 12])
    images = rng.integers(0, 255, (len(labels), 8, 8, 3), dtype=np.uint8)
    save_image_set(tmp_path / "data/train.npz", ImageSet(images, labels, CLASSES))
    save_image_set(tmp_path / "data/test.npz", ImageSet(images[:9], np.repeat(np.arange(3), 3), CLASSES))
    write_json(tmp_path / "data/meta.json", {"sha256": "fixture"})
    save_index_arrays(
        tmp_path / "splits.npz", {"train": np.arange(len(labels)), "val": np.arange(0), "full": np.arange(len(labels))}
    )
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw = dict(params["train_generator"])
    raw["gan"] = dict(raw["gan"], latent_dim=8, base_channels=8)
    trainer = build_trainer(
        "gan", parse_section("train_generator", raw, TrainGeneratorParams), 8, 3, torch.device("cpu")
    )
    for run in ("seed0", "seed1"):  # one generator run per experiment seed
        trainer.export(tmp_path / "gan" / run)  # untrained weights: the sharding, not the images, is under test
        write_json(
            tmp_path / "gan" / run / GENERATOR_FILE,
            {"generator": "gan", "trained": True, "class_names": list(CLASSES), "image_size": 8},
        )
    params["experiment"].update(seeds=[0, 1], generator_runs="per_seed")
    params["synthesize"].update(shard_size=2, eval_per_class=3, preview_per_class=2)
    params["synthesize"]["gan"] = {"batch_size": 2, "device": "cpu"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def synthesize(project: Path, out: str, launcher: list[str]) -> subprocess.CompletedProcess:
    env = stage_env(project)
    args = [
        "--generator",
        "gan",
        "--model",
        "gan",
        "--data",
        "data",
        "--splits",
        "splits.npz",
        "--out",
        f"{out}/synthetic",
        "--eval-out",
        f"{out}/eval",
        "--previews",
        f"{out}/previews",
    ]
    result = subprocess.run(
        [*launcher, str(ROOT / "stages/synthesize.py"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_gloo_processes_write_the_shards_one_process_writes(project):
    synthesize(project, "one", [sys.executable])
    two = synthesize(
        project, "two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    )
    output = two.stdout + two.stderr
    assert "rank 1 of 2 done" in output
    # 9 + 6 to reach 12 per class, plus 3 per class for FID: all generated, none twice
    # per run, 9 + 6 to reach 12 per class, plus 3 per class for FID: all generated, none twice
    assert "2 run(s) of 15 synthetic + 9 evaluation images (48 generated now" in output
    for folder in ("synthetic", "eval"):
        one, two_ = (
            sorted(str(p.relative_to(project / out / folder)) for p in (project / out / folder).rglob("*"))
            for out in ("one", "two")
        )
        assert one == two_
        for run in ("seed0", "seed1"):
            shards = [n for n in one if n.startswith(f"{run}/shard-")]
            assert len(shards) == {"synthetic": 8, "eval": 5}[folder]
        for name in one:
            if (project / "one" / folder / name).is_file():
                assert (project / "one" / folder / name).read_bytes() == (
                    project / "two" / folder / name
                ).read_bytes(), name
    # the runs are independent draws: their shards differ
    seed0, seed1 = ((project / "one/synthetic" / run / "shard-00000.npz").read_bytes() for run in ("seed0", "seed1"))
    assert seed0 != seed1
    counted = [json.loads((project / out / "previews.json").read_text()) for out in ("one", "two")]
    for record in counted:  # what the run spent is measured, not reproduced
        assert record.pop("seconds") >= 0 and record.pop("eval_seconds") >= 0 and record.pop("device") == "cpu"
        for run in record["runs"].values():
            assert run.pop("seconds") >= 0 and run.pop("eval_seconds") >= 0
    assert counted[0] == counted[1] and counted[0]["generated_this_run"] == 48
    assert [r["seed"] for r in counted[0]["runs"].values()] == [
        generator_run_seed(0, "seed0"),
        generator_run_seed(0, "seed1"),
    ]
    assert not any(p.name.startswith(".") for p in (project / "two").iterdir())  # no work folder left
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute(
            "select count(*) from runs where name like 'synthesize/gan/seed_' and status = 'FINISHED'"
        ).fetchone()[0]
        generated = [row[0] for row in db.execute("select value from metrics where key = 'generated_this_run'")]
    assert runs == 4 and generated == [24.0] * 4  # one MLflow run per generator run and invocation; rank 1 logs nothing
