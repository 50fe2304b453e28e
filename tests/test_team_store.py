"""One place where a team's runs meet: `mlflow server` on PostgreSQL for the stage runs, and one PostgreSQL Optuna
study shared by several `synthaug hpo` workers. A real server, started here; the password only in PGPASSWORD."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import optuna
import pytest
import yaml

from .conftest import HANG_GUARD_S, ROOT, server_folder
from .mlflow_server import mlflow_server
from .postgres import PASSWORD, postgres_server


@pytest.fixture(scope="module")
def postgres():
    with server_folder("synthaug-pg-") as folder, postgres_server(folder) as server:
        yield server


def no_password_in(*texts: str) -> bool:
    return not any(PASSWORD in text for text in texts)


STAGES_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from synthaug.core.tracking import stage_run

    artifact = Path(sys.argv[1])
    artifact.write_text("{}")
    for index in range(4):
        with stage_run(f"stage{index}", {"train": {"lr": 0.1 * index}}, {"worker": sys.argv[2]}) as run:
            run.log_metrics({"score": float(index)})
            run.log_artifact(artifact)
    """
)


def test_two_experiments_log_every_stage_run_to_mlflow_on_postgres(postgres, tmp_path):
    postgres.create_database("mlflow")
    options = ("--backend-store-uri", postgres.url("mlflow"), "--artifacts-destination", str(tmp_path / "artifacts"))
    with mlflow_server(*options, env=postgres.env(), workers=2) as base:
        (tmp_path / "script.py").write_text(STAGES_SCRIPT)
        workers = []
        for name in ("exp-a", "exp-b"):  # two experiments at once, as two queue workers or two machines run them
            folder = tmp_path / name
            folder.mkdir()
            env = {**os.environ, "MLFLOW_TRACKING_URI": base, "DVC_EXP_NAME": name, "DVC_ROOT": str(folder)}
            env["PYTHONPATH"] = str(ROOT / "src")
            command = [sys.executable, str(tmp_path / "script.py"), str(folder / f"{name}.json"), name]
            workers.append(
                subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            )
        outputs = [worker.communicate(timeout=HANG_GUARD_S) for worker in workers]
        for worker, (_, err) in zip(workers, outputs):
            assert worker.returncode == 0, err.decode()
            assert b"MLflow" not in err and b"locked" not in err  # no warning that a run was not recorded
        import mlflow

        client = mlflow.MlflowClient(base)
        experiment = client.get_experiment_by_name("synthaug")
        runs = client.search_runs([experiment.experiment_id], max_results=100)
        parents = {r.info.run_name: r.info.run_id for r in runs if r.data.tags.get("synthaug.role") == "pipeline"}
        assert sorted(parents) == ["exp-a", "exp-b"]
        stages = [r for r in runs if "synthaug.role" not in r.data.tags]
        assert sorted((r.data.tags["worker"], r.info.run_name) for r in stages) == sorted(
            (name, f"stage{index}") for name in ("exp-a", "exp-b") for index in range(4)
        )
        for run in stages:
            assert run.info.status == "FINISHED" and run.data.metrics["score"] == float(run.info.run_name[-1])
            assert run.data.tags["mlflow.parentRunId"] == parents[run.data.tags["worker"]]
            assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"{run.data.tags['worker']}.json"]
        assert (tmp_path / "artifacts").is_dir()  # artifacts on the server's store, not on the workers' disks
        assert not (tmp_path / "exp-a" / "mlartifacts").exists()
        assert no_password_in(*(out.decode() + err.decode() for out, err in outputs))
        assert no_password_in(*(str(run.data.params) + str(run.data.tags) for run in runs))


def test_two_hpo_workers_share_one_postgres_study(postgres, tmp_path):
    from .train.test_hpo import make_project

    postgres.create_database("optuna")
    url = postgres.url("optuna")
    workers = []
    for worker in (0, 1):  # two machines: each its own checkout, one study
        project = tmp_path / f"worker{worker}"
        project.mkdir()
        env = {**make_project(project, storage=url, trials=4, study="shared"), **postgres.env()}
        command = [sys.executable, "-m", "synthaug.tools.cli", "hpo", "--worker", str(worker)]
        workers.append(
            (project, subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        )
    for _, process in workers:
        out, err = process.communicate(timeout=HANG_GUARD_S)
        assert process.returncode == 0, err.decode()
        assert no_password_in(out.decode(), err.decode())
    results = sorted((p / "metrics/hpo/shared/best_params.yaml" for p, _ in workers), key=lambda f: f.stat().st_mtime)
    os.environ["PGPASSWORD"] = PASSWORD
    try:
        study = optuna.load_study(study_name="shared", storage=url)
    finally:
        del os.environ["PGPASSWORD"]
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(done) == 4  # exactly hpo.trials between the two workers
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4  # no point trained twice
    assert all(t.user_attrs.get("surplus") for t in study.trials if t not in done)  # only surplus asks are left over
    last = yaml.safe_load(results[-1].read_text())
    assert last["trial"] == study.best_trial.number  # the worker that finished last wrote the study's best
    assert last["train"] == study.best_trial.params
    for project, _ in workers:
        for path in project.rglob("*"):
            if path.is_file() and path.suffix in (".yaml", ".csv", ".txt", ".json", ".db"):
                assert PASSWORD.encode() not in path.read_bytes(), path
