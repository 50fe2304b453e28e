"""Generator runs trained at once in worker processes (train_generator.run_processes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.io import read_json
from synthaug.core.params import ExperimentParams, parse_section
from synthaug.core.workers import map_in_processes, threads_per_worker
from synthaug.data.storage import save_image_set, save_index_arrays
from synthaug.generators.gan import WEIGHTS_FILE
from synthaug.pipeline.train_generator import GeneratorPaths, train_generator_runs

from ..conftest import finished_stage_runs


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
    raw = dict(project_params["experiment"], seeds=[0, 1], generator_runs="per_seed")
    experiment = parse_section("experiment", raw, ExperimentParams)

    def train(name: str, processes: int) -> str:
        params = generator_params.model_copy(update={"run_processes": processes, "device": "cpu"})
        paths = GeneratorPaths(tmp_path / "data", tmp_path / "splits.npz", tmp_path / name, tmp_path / f"{name}_curves")
        return train_generator_runs("gan", params, experiment, paths)

    assert "2 at once" in train("at_once", 2)
    threads = threads_per_worker(2)
    runs = read_json(tmp_path / "at_once_curves.json")["runs"]
    assert {run: summary["torch_threads"] for run, summary in runs.items()} == {"seed0": threads, "seed1": threads}
    # Both workers logged their run to the one sqlite store at the same time.
    assert finished_stage_runs(tmp_path / "mlflow.db") == ["train_generator/gan/seed0", "train_generator/gan/seed1"]

    # The same runs one after another in this process, on as many threads as each worker had: the same weights.
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert "at once" not in train("one_by_one", 1)
    finally:
        torch.set_num_threads(saved_threads)
    weights = {
        (name, run): (tmp_path / name / run / WEIGHTS_FILE).read_bytes()
        for name in ("at_once", "one_by_one")
        for run in ("seed0", "seed1")
    }
    for run in ("seed0", "seed1"):
        assert weights["at_once", run] == weights["one_by_one", run]
    assert weights["at_once", "seed0"] != weights["at_once", "seed1"]  # each worker trained its own run
