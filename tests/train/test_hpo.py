"""`synthaug hpo`: an Optuna study that prunes, logs nested MLflow runs, writes applicable best params, resumes."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from synthaug.core.errors import ParamsError
from synthaug.core.param_rules import parse_section
from synthaug.core.params import HpoParams, TrainParams
from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays
from synthaug.tools.hpo import pruning_callback, trial_params
from synthaug.train.classifier import EpochRecord

from ..conftest import ROOT

SPACE = {
    "lr": {"low": 1e-3, "high": 1e-2, "log": True},
    "batch_size": [4, 8],
    "augment_p": {"low": 0.0, "high": 1.0, "log": False},
}


def hpo_section(**overrides) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["hpo"]
    return {
        **raw,
        "classifier": "cnn",
        "study": "tiny",
        "trials": 3,
        "space": SPACE,
        "pruner": {"startup_trials": 1, "warmup_epochs": 1},
        **overrides,
    }


def make_project(root: Path, **hpo_overrides) -> dict[str, str]:
    """params.yaml with a tiny train section, and the fetch/imbalance outputs of a 3-class colour dataset."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(epochs=3, batch_size=8, image_size=8, eval_batch_size=32, lr=3e-3)
    params["train"]["cnn"] = {"channels": [4, 8], "dropout": 0.0}
    params["hpo"] = hpo_section(**hpo_overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = np.clip(rng.normal(60, 20, (60, 8, 8, 3)), 0, 255)
    images[np.arange(60), :, :, labels] += 120  # each class has its own dominant colour
    save_image_set(root / "data/cifar10/train.npz", ImageSet(images.astype(np.uint8), labels, ("a", "b", "c")))
    save_index_arrays(
        root / "data/splits.npz", {"train": np.arange(0, 45), "val": np.arange(45, 60), "full": np.arange(45)}
    )
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db"}


def run_hpo(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthaug.tools.cli", "hpo"], cwd=root, env=env, capture_output=True, text=True
    )


def test_hpo_searches_logs_nested_trials_writes_best_and_resumes(tmp_path):
    env = make_project(tmp_path)
    first = run_hpo(tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert "study tiny: 3 new trials, 3 finished" in first.stdout

    out = tmp_path / "metrics/hpo/tiny"
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    assert set(best["train"]) == set(SPACE)
    assert 1e-3 <= best["train"]["lr"] <= 1e-2 and best["train"]["batch_size"] in (4, 8)
    trials = list(csv.DictReader((out / "trials.csv").read_text().splitlines()))
    assert [t["number"] for t in trials] == ["0", "1", "2"]
    assert float(best["val_macro_f1"]) == max(float(t["val_macro_f1"]) for t in trials if t["state"] == "COMPLETE")

    # the overrides are what `dvc exp run` takes, and they validate as a train section
    overrides = (out / "best_overrides.txt").read_text().split()
    assert overrides[0::2] == ["-S"] * len(SPACE)
    values = {item.split("=")[0].removeprefix("train."): yaml.safe_load(item.split("=")[1]) for item in overrides[1::2]}
    assert values == best["train"]
    base = yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]
    assert parse_section("train", {**base, **values}, TrainParams).batch_size == best["train"]["batch_size"]
    assert f"apply the best: dvc exp run {' '.join(overrides)}" in first.stdout

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        runs = dict(db.execute("select name, run_uuid from runs").fetchall())
        parents = dict(
            db.execute(
                "select r.name, t.value from runs r join tags t on t.run_uuid = r.run_uuid where t.key = "
                "'mlflow.parentRunId'"
            ).fetchall()
        )
        epochs_logged = db.execute("select count(*) from metrics where key = 'val_macro_f1'").fetchone()[0]
    study_run = parents.pop("hpo/tiny")  # the study's run sits under its pipeline execution's run, like a stage's
    assert study_run not in parents.values() and study_run in runs.values()
    assert parents == {f"trial {n}": runs["hpo/tiny"] for n in range(3)}
    assert epochs_logged == sum(int(t["epochs"]) for t in trials)

    # rerun with a higher target: the same study continues with exactly the missing trial
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["hpo"]["trials"] = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = run_hpo(tmp_path, env)
    assert second.returncode == 0, second.stderr
    assert "study tiny: 1 new trials, 4 finished" in second.stdout
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/models/hpo/optuna.db")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    # the resumed sampler does not replay the first run's start-up draws
    assert study.trials[3].params != study.trials[0].params
    assert len((out / "trials.csv").read_text().splitlines()) == 1 + 4


def test_missing_data_names_the_stage_to_run(tmp_path):
    env = make_project(tmp_path)
    (tmp_path / "data/splits.npz").unlink()
    result = run_hpo(tmp_path, env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "synthaug hpo: error: data/splits.npz: missing (run `dvc repro imbalance` first)"
    )


def test_the_space_may_only_name_searchable_train_keys():
    with pytest.raises(ParamsError, match=r"hpo.space: cannot search \['vit'\]"):
        parse_section("hpo", hpo_section(space={**SPACE, "vit": [1, 2]}), HpoParams)
    with pytest.raises(ParamsError, match=r"low \(0.1\) must be below high \(0.01\)"):
        parse_section("hpo", hpo_section(space={"lr": {"low": 0.1, "high": 0.01, "log": True}}), HpoParams)


def test_a_trial_value_out_of_the_train_range_fails_by_key(tiny_train_params):
    with pytest.raises(ParamsError, match=r"train.augment_p: .*less than or equal to 1"):
        trial_params(tiny_train_params, {"augment_p": 1.5})


def test_pruning_reports_each_epoch_and_stops_after_the_warmup():
    class Trial:
        def __init__(self) -> None:
            self.reported: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reported.append((value, step))

        def should_prune(self) -> bool:
            return True

    trial = Trial()
    on_epoch = pruning_callback(trial, warmup_epochs=1)
    record = lambda epoch: EpochRecord(epoch, 1e-3, 1.0, 0.5, 0.5, 0.25 * epoch)  # noqa: E731
    on_epoch(record(1))  # within the warm-up: reported, never pruned
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 2"):
        on_epoch(record(2))
    assert trial.reported == [(0.25, 1), (0.5, 2)]


def test_fresh_studies_with_one_sampler_seed_draw_the_same_trials(tmp_path):
    from synthaug.tools.hpo import open_study, storage_url, suggest

    params = parse_section("hpo", hpo_section(), HpoParams)
    draws = []
    for name, worker in (("a", 0), ("b", 0), ("c", 0), ("d", 1)):
        seeded = params if name != "c" else params.model_copy(update={"sampler_seed": 1})
        study = open_study(seeded, storage_url(seeded, tmp_path / name / "optuna.db"), worker)
        draws.append([suggest(study.ask(), params.space) for _ in range(2)])
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert draws[0] != draws[3]  # a second worker on the same study draws other points


def test_trials_train_on_train_device_with_the_variants_loss(tmp_path, monkeypatch, tiny_train_params):
    """HPO builds each trial's model through the same prepare_training as the stage: on train.device, with the loss."""
    from synthaug.core.tracking import RunLogger
    from synthaug.tools import hpo
    from synthaug.train import classifier

    asked: list[tuple[str, str]] = []
    real_resolve = classifier.resolve_device
    monkeypatch.setattr(
        classifier, "resolve_device", lambda device, key: asked.append((device, key)) or real_resolve(device, key)
    )
    seen = []

    def fake_train(setup, train_set, val_set, params, seed, on_epoch=None, **kwargs):
        seen.append((classifier.model_device(setup.model), setup.loss_spec))
        on_epoch(
            EpochRecord(epoch=1, lr=params.lr, train_loss=1.0, train_accuracy=0.5, val_accuracy=0.5, val_macro_f1=0.5)
        )
        return classifier.TrainResult(
            best_state={},
            best_epoch=1,
            history=[
                EpochRecord(
                    epoch=1, lr=params.lr, train_loss=1.0, train_accuracy=0.5, val_accuracy=0.5, val_macro_f1=0.5
                )
            ],
        )

    monkeypatch.setattr(hpo, "train_classifier", fake_train)
    labels = np.array([0] * 8 + [1] * 2)
    images = ImageSet(np.zeros((10, 8, 8, 3), np.uint8), labels, ("a", "b"))
    params = HpoParams.model_validate(hpo_section(variant="logit_adjusted", trials=2, space={"lr": [1e-3]}))
    base = tiny_train_params.model_copy(update={"device": "cpu"})
    hpo.run_search(params, base, images, images, f"sqlite:///{tmp_path}/study.db", RunLogger(None))
    assert asked == [("cpu", "train.device")] * 2
    assert [device.type for device, _ in seen] == ["cpu", "cpu"]
    offset = seen[0][1].logit_offset  # logit_adjusted: tau * log(prior), the rare class pushed up
    assert offset is not None and offset[1] < offset[0]


def test_prepare_training_refuses_a_missing_device_by_key(tiny_train_params):
    import torch

    from synthaug.core.errors import ModelLoadError
    from synthaug.train.classifier import prepare_training

    images = ImageSet(np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1]), ("a", "b"))
    setup = prepare_training("cnn", "baseline", tiny_train_params.model_copy(update={"device": "cpu"}), images)
    assert setup.device == torch.device("cpu") and setup.spec.kind == "cnn" and setup.loss_spec.logit_offset is None
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match=r"train\.device: cuda requested"):
            prepare_training("cnn", "baseline", tiny_train_params.model_copy(update={"device": "cuda"}), images)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("IntegrityError", True),  # the study's row, or a table's type, made by the other worker first
        ("duplicate table", True),  # psycopg's DuplicateTable: 'relation "studies" already exists'
        ("syntax error", False),  # anything else is not a race: raised at once
    ],
)
def test_a_worker_that_loses_the_race_to_create_the_study_loads_it(error, retried, monkeypatch, tmp_path):
    import sqlalchemy

    from synthaug.tools import hpo

    calls = []
    real_create = optuna.create_study

    def racing_create(**kwargs):
        calls.append(kwargs["study_name"])
        if len(calls) == 1:
            if error == "IntegrityError":
                raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key value"))
            message = 'relation "studies" already exists' if error == "duplicate table" else "syntax error at or near"
            raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, Exception(message))
        return real_create(**kwargs)

    monkeypatch.setattr(hpo.optuna, "create_study", racing_create)
    monkeypatch.setattr(hpo.time, "sleep", lambda seconds: None)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    if retried:
        assert hpo.create_or_load(url, "shared").study_name == "shared" and len(calls) == 2
    else:
        with pytest.raises(sqlalchemy.exc.ProgrammingError, match="syntax error"):
            hpo.create_or_load(url, "shared")
        assert len(calls) == 1
