from __future__ import annotations

import pytest
import yaml

from synthaug.core import tracking
from synthaug.core.io import atomic_path, read_json, write_json

from .conftest import ROOT


def test_atomic_file_appears_only_on_success(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"b": 1, "a": [1, 2]})
    assert read_json(target) == {"a": [1, 2], "b": 1}
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_outputs_get_umask_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        with atomic_path(tmp_path / "d", directory=True):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_atomic_directory_replaces_old_output(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "new.bin").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "partial.bin").write_text("x")
            raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["new.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_flatten_and_run_names():
    assert tracking.flat_params({"train": {"lr": 0.1, "vit": {"patch_size": 4}}, "seeds": [0, 1]}) == {
        "train.lr": 0.1,
        "train.vit.patch_size": 4,
        "seeds": [0, 1],
    }
    assert tracking.run_name("train_classifier", "vit-baseline", 0) == "train_classifier/vit-baseline/seed0"
    assert tracking.run_name("fetch") == "fetch"


def test_store_is_the_parent_repo_under_dvc(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.repo_root() == tmp_path.resolve()
    assert tracking.tracking_uri(tracking.repo_root()) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_stage_run_logs_params_metrics_tags_and_artifacts(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    artifact = tmp_path / "m.json"
    artifact.write_text("{}")
    with tracking.stage_run(
        "train_classifier/vit-baseline/seed0", {"train": {"batch_size": 8}}, {"variant": "baseline"}
    ) as run:
        run.log_metrics({"test_accuracy": 0.5})
        run.log_metrics({"val_macro_f1": 0.25}, step=2)
        run.log_artifact(artifact)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on its runs
    parent, found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert parent.info.run_name == "exp-test" and parent.data.tags["synthaug.role"] == "pipeline"
    assert found.data.tags["mlflow.parentRunId"] == parent.info.run_id  # nested under its pipeline execution
    assert found.info.run_name == "train_classifier/vit-baseline/seed0" and found.info.status == "FINISHED"
    assert found.data.params == {"train.batch_size": "8"}
    assert found.data.metrics == {"test_accuracy": 0.5, "val_macro_f1": 0.25}
    assert found.data.tags["dvc_exp_name"] == "exp-test" and found.data.tags["variant"] == "baseline"
    assert found.data.tags["synthaug.stage"] == "train_classifier"
    assert found.data.tags["synthaug.pipeline"] == "exp-test"  # groups all stages of the experiment
    assert [a.path for a in client.list_artifacts(found.info.run_id)] == ["m.json"]


def test_stages_of_one_pipeline_execution_share_one_parent_run(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    # a store made before the experiment said what it holds gets the tag on the next stage run
    client.create_experiment(tracking.EXPERIMENT_NAME, artifact_location=(tmp_path / "mlartifacts").as_uri())
    for pipeline, stages in (("exp-a", ("fetch", "imbalance")), ("exp-b", ("fetch",))):
        monkeypatch.setenv("DVC_EXP_NAME", pipeline)
        for stage in stages:
            with tracking.stage_run(stage, {}):
                pass
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_name: r.info.run_id for r in runs if r.data.tags.get("synthaug.role") == "pipeline"}
    assert sorted(parents) == ["exp-a", "exp-b"]
    children = sorted(
        (r.data.tags["synthaug.pipeline"], r.info.run_name, r.data.tags["mlflow.parentRunId"])
        for r in runs
        if "synthaug.role" not in r.data.tags
    )
    assert children == [
        ("exp-a", "fetch", parents["exp-a"]),
        ("exp-a", "imbalance", parents["exp-a"]),
        ("exp-b", "fetch", parents["exp-b"]),
    ]


def test_a_parent_made_twice_by_a_race_is_reduced_to_the_first(monkeypatch, tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment_id = client.create_experiment("race")
    early = client.create_run(experiment_id, run_name="p", tags={"synthaug.pipeline": "p", "synthaug.role": "pipeline"})
    searches = []
    real_search = client.search_runs

    def late_search(*args, **kwargs):  # the first search misses the other stage's parent, as in a race
        searches.append(args)
        return [] if len(searches) == 1 else real_search(*args, **kwargs)

    monkeypatch.setattr(client, "search_runs", late_search)
    assert tracking.pipeline_run(client, experiment_id, "p") == early.info.run_id
    alive = real_search([experiment_id], "tags.`synthaug.role` = 'pipeline'")
    assert [r.info.run_id for r in alive] == [early.info.run_id]  # the second parent was deleted


def test_pipeline_id_without_dvc_changes_with_params(monkeypatch, tmp_path):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text("a: 1\n")
    first = tracking.pipeline_id(params)
    assert first.startswith("workspace-") and first == tracking.pipeline_id(params)
    params.write_text("a: 2\n")
    assert tracking.pipeline_id(params) != first


def test_unreachable_store_warns_and_stage_goes_on(monkeypatch, tmp_path, caplog):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/not-a-folder/mlflow.db")
    done = []
    with tracking.stage_run("fetch", {"fetch": {}}) as run:
        run.log_metrics({"x": 1.0})
        done.append(True)
    assert done == [True] and not run.active
    assert "runs without tracking" in caplog.text


def test_strict_tracking_fails_the_stage_clearly(monkeypatch, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/not-a-folder/mlflow.db")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tracking"]["strict"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        tracking.TrackingError,
        match=r"MLflow unavailable at sqlite:///.*not-a-folder/mlflow.db .* tracking.strict is true",
    ):
        with tracking.stage_run("fetch", {"fetch": {}}):
            pass


def test_strict_tracking_also_covers_failures_after_start(caplog):
    class BrokenStore:
        def log_metrics(self, *args, **kwargs):
            raise OSError("database is locked")

    tracking.RunLogger(BrokenStore(), strict=False).log_metrics({"x": 1.0})
    assert "MLflow log_metrics failed (OSError: database is locked)" in caplog.text
    with pytest.raises(
        tracking.TrackingError, match="MLflow log_metrics failed .*database is locked.* tracking.strict"
    ):
        tracking.RunLogger(BrokenStore(), strict=True).log_metrics({"x": 1.0})


def test_free_space_is_checked_before_writing(monkeypatch, tmp_path):
    import shutil
    from collections import namedtuple

    from synthaug.core.io import DiskSpaceError, ensure_free_space

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 0, 50 * 2**20))
    ensure_free_space(tmp_path / "not" / "yet", 40 * 2**20, "fetch")  # 44 MiB with the margin: fits in 50
    with pytest.raises(
        DiskSpaceError, match=rf"synthesize@ddpm needs about 110.0 MiB free in {tmp_path}, only 50.0 MiB are"
    ):
        ensure_free_space(tmp_path / "data" / "synthetic", 100 * 2**20, "synthesize@ddpm")


def test_urls_are_printed_without_their_password():
    from synthaug.core.io import redact_url

    assert redact_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db" and redact_url(3) == 3


def test_a_tracking_server_keeps_the_artifacts_a_local_store_puts_beside_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team-server:5000")
    assert tracking.artifact_root(tmp_path) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    assert tracking.artifact_root(tmp_path) == (tmp_path / "mlartifacts").as_uri()


def test_the_pipeline_run_carries_the_headline_the_report_stage_logs(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-headline")
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    with tracking.stage_run("fetch", {}):
        pass
    with tracking.stage_run("report", {}) as run:
        run.log_to_pipeline_run(
            {"test_macro_f1.vit-baseline": 0.25, "test_macro_f1.vit-synthetic_gan+logit_adjusted": 0.5},
            {
                "verdict.vit-oversampled.vs_baseline": "oversampled: beats baseline (Holm p 0.028)",
                **{f"verdict.vit-v{k}.vs_baseline": "within noise" for k in range(150)},  # past MLflow's 100 a batch
            },
            [report],
        )
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    (parent,) = [
        r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("synthaug.role") == "pipeline"
    ]
    assert parent.data.metrics == {
        "test_macro_f1.vit-baseline": 0.25,
        "test_macro_f1.vit-synthetic_gan plus logit_adjusted": 0.5,  # MLflow refuses '+' in a key
    }
    assert parent.data.tags["verdict.vit-oversampled.vs_baseline"] == "oversampled: beats baseline (Holm p 0.028)"
    assert sum(key.startswith("verdict.") for key in parent.data.tags) == 151
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["report.html"]
    # the stage's own run keeps only its own
    (stage,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "report"]
    assert stage.data.metrics == {} and client.list_artifacts(stage.info.run_id) == []
