"""The MLflow server on the pipeline's store, read through its REST API and in a real browser."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from synthaug.core import tracking

from .browser import png_is_not_blank, render
from .mlflow_server import mlflow_server as start_mlflow_server


def api(base: str, path: str, payload: dict | None = None) -> dict:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    os.environ["DVC_ROOT"] = str(root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        artifact = root / "metrics.json"
        artifact.write_text('{"accuracy": 0.5}')
        for variant, accuracy in (("baseline", 0.5), ("oversampled", 0.6)):
            with tracking.stage_run(
                f"train_classifier/vit-{variant}/seed0", {"train": {"batch_size": 8}}, {"variant": variant}
            ) as run:
                run.log_metrics({"test_accuracy": accuracy})
                run.log_artifact(artifact)
    finally:
        os.environ.pop("DVC_ROOT")
    with start_mlflow_server("--backend-store-uri", f"sqlite:///{root}/mlflow.db") as base:
        yield base


def test_rest_api_shows_runs_metrics_and_artifacts(mlflow_server):
    experiment = api(
        mlflow_server, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={tracking.EXPERIMENT_NAME}"
    )
    experiment_id = experiment["experiment"]["experiment_id"]
    runs = api(mlflow_server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})["runs"]
    by_name = {run["info"]["run_name"]: run for run in runs}
    pipeline = tracking.pipeline_id()
    assert set(by_name) == {pipeline, "train_classifier/vit-baseline/seed0", "train_classifier/vit-oversampled/seed0"}
    parent = by_name.pop(pipeline)["info"]["run_id"]
    for run in by_name.values():
        assert {t["key"]: t["value"] for t in run["data"]["tags"]}["mlflow.parentRunId"] == parent
    metrics = {m["key"]: m["value"] for m in by_name["train_classifier/vit-oversampled/seed0"]["data"]["metrics"]}
    assert metrics == {"test_accuracy": 0.6}
    run_id = by_name["train_classifier/vit-baseline/seed0"]["info"]["run_id"]
    artifacts = api(mlflow_server, f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    assert [f["path"] for f in artifacts["files"]] == ["metrics.json"]


def test_ui_lists_the_experiment_and_its_runs_in_a_browser(mlflow_server, tmp_path):
    experiments = render(f"{mlflow_server}/#/experiments", tmp_path / "experiments.png", wait_ms=15000)
    assert "experiment-list-item-link" in experiments and tracking.EXPERIMENT_NAME in experiments
    runs = render(f"{mlflow_server}/#/experiments/1/runs", tmp_path / "runs.png", wait_ms=20000)
    assert tracking.pipeline_id() in runs  # the stage runs are nested under their pipeline execution's row
    assert png_is_not_blank(tmp_path / "runs.png")


def test_the_address_make_mlflow_ui_prints_opens_on_the_runs(mlflow_server, tmp_path):
    # MLflow 3.17 picks an experiment's landing page by the UI's GenAI / Model training switch (the experiment's
    # mlflow.experimentKind tag is read by other versions): the address `make mlflow-ui` prints sets the switch.
    landing = render(f"{mlflow_server}/{tracking.UI_PATH}", tmp_path / "landing.png", wait_ms=20000)
    assert "experiment-list-item-link" in landing
    page = render(
        f"{mlflow_server}/#/experiments/1?workflowType=machine_learning", tmp_path / "runs.png", wait_ms=20000
    )
    assert "<title>Runs - Experiment 1 - MLflow</title>" in page and "Traces 0" not in page
    assert tracking.pipeline_id() in page  # one row per pipeline execution, its stage runs nested under it
