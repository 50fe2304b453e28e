"""Seeds (train.seed_processes) and generator runs (train_generator.run_processes) trained at once in workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.io import read_json, work_folder
from synthaug.core.param_rules import parse_section
from synthaug.core.params import ExperimentParams
from synthaug.core.workers import map_in_processes, threads_per_worker
from synthaug.data.imbalance import make_splits
from synthaug.data.storage import ImageSet, save_image_set, save_index_arrays
from synthaug.generators.gan import WEIGHTS_FILE
from synthaug.models.checkpoint import WEIGHTS_FILE as CLASSIFIER_WEIGHTS
from synthaug.pipeline.train_generator import GeneratorPaths, train_generator_runs
from synthaug.train.entry import Entry, EntryOutputs, SeedPlan, train_entry

from ..conftest import finished_stage_runs


def trained_alone(threads: int, train) -> str:
    """`train()` in this process on `threads` torch threads, as many as each worker had."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return train()
    finally:
        torch.set_num_threads(saved)


def test_workers_return_in_order_with_their_share_of_the_cores():
    assert map_in_processes(pow, [(2, 3), (3, 2), (5, 1)], 2) == [8, 9, 5]
    assert map_in_processes(torch.get_num_threads, [(), ()], 2) == [threads_per_worker(2)] * 2


def test_a_failing_worker_raises_its_error_here():
    with pytest.raises(ValueError, match="invalid literal for int"):
        map_in_processes(int, [("12",), ("twelve",)], 2)


def test_runs_trained_at_once_are_the_runs_trained_one_after_another(
    tmp_path, monkeypatch, generator_params, tiny_images, project_params
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # the workers inherit it
    save_image_set(tmp_path / "data" / "train.npz", tiny_images)
    save_index_arrays(tmp_path / "splits.npz", {"train": np.arange(len(tiny_images))})

    def train(name: str, processes: int) -> str:
        raw = dict(project_params["experiment"], seeds=[0, 1], generator_runs="per_seed")
        experiment = parse_section("experiment", raw, ExperimentParams)
        params = generator_params.model_copy(update={"device": "cpu", "run_processes": processes})
        paths = GeneratorPaths(tmp_path / "data", tmp_path / "splits.npz", tmp_path / name, tmp_path / f"{name}_curves")
        return train_generator_runs("gan", params, experiment, paths)

    assert "2 at once" in train("at_once", 2)
    threads = threads_per_worker(2)
    runs = read_json(tmp_path / "at_once_curves.json")["runs"]
    assert {run: summary["torch_threads"] for run, summary in runs.items()} == {"seed0": threads, "seed1": threads}
    # Both workers logged their run to the one sqlite store at the same time.
    assert finished_stage_runs(tmp_path / "mlflow.db") == ["train_generator/gan/seed0", "train_generator/gan/seed1"]

    # The same runs one after another in this process, on as many threads as each worker had: the same weights.
    assert "at once" not in trained_alone(threads, lambda: train("one_by_one", 1))
    weights = {
        (name, run): (tmp_path / name / run / WEIGHTS_FILE).read_bytes()
        for name in ("at_once", "one_by_one")
        for run in ("seed0", "seed1")
    }
    for run in ("seed0", "seed1"):
        assert weights["at_once", run] == weights["one_by_one", run]
    assert weights["at_once", "seed0"] != weights["at_once", "seed1"]  # each worker trained its own run


def test_seeds_trained_at_once_are_the_seeds_trained_one_after_another(
    tmp_path, monkeypatch, tiny_train_params, project_params
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 16)
    images = (rng.integers(0, 60, (len(labels), 8, 8, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    classes = ("cat", "dog", "frog")
    save_image_set(tmp_path / "data" / "train.npz", ImageSet(images, labels, classes))
    save_image_set(tmp_path / "data" / "test.npz", ImageSet(images[::2], labels[::2], classes))
    splits = make_splits(labels, classes, np.array([0.5, 0.75, 1.0]), val_per_class=4, subset_per_class=None, seed=0)
    save_index_arrays(tmp_path / "splits.npz", splits.as_arrays())
    params = tiny_train_params.model_copy(update={"device": "cpu"})

    def train(name: str, at_once: int) -> str:
        outputs = EntryOutputs(*(tmp_path / name / field for field in EntryOutputs.__dataclass_fields__))
        entry = Entry("train_classifier", "vit", "oversampled", tmp_path / "data", tmp_path / "splits.npz", outputs)
        return train_entry(entry, params, SeedPlan([0, 1], at_once))

    assert "(2 seeds at once)" in train("at_once", 2)
    threads = threads_per_worker(2)
    assert "at once" not in trained_alone(threads, lambda: train("one_by_one", 1))
    weights = {
        (name, seed): (tmp_path / name / "model" / f"seed{seed}" / CLASSIFIER_WEIGHTS).read_bytes()
        for name in ("at_once", "one_by_one")
        for seed in (0, 1)
    }
    for seed in (0, 1):
        assert weights["at_once", seed] == weights["one_by_one", seed]
        detail = read_json(tmp_path / "at_once" / "summary_detail" / f"seed{seed}.json")
        assert detail["torch_threads"] == threads
        scores = [read_json(tmp_path / name / "scores" / f"seed{seed}.json") for name in ("at_once", "one_by_one")]
        assert scores[0] == scores[1]
    assert weights["at_once", 0] != weights["at_once", 1]
    assert not work_folder(tmp_path / "at_once" / "model").exists()  # resume state goes once every seed is done
    runs = [name for name in finished_stage_runs(tmp_path / "mlflow.db") if name.startswith("train_classifier")]
    assert sorted(runs) == sorted(
        ["train_classifier/vit-oversampled/seed0", "train_classifier/vit-oversampled/seed1"] * 2
    )
