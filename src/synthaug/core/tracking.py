"""The one place that knows how stages talk to MLflow: store URI, experiment, run names, tags.

The store is `sqlite:///<repo>/mlflow.db` of the *main* repository, also for `dvc exp run --temp`
and queued experiments (DVC points DVC_ROOT at the parent repo there), so every run lands together.
A tracking failure never costs a stage its DVC outputs: it is logged once and the stage goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthaug.core.errors import TrackingError
from synthaug.core.io import redact_url
from synthaug.core.provenance import flat_params, git_commit

EXPERIMENT_NAME = "synthaug"
STORE_FILE = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
# MLflow's UI opens an experiment by its kind; without this tag MLflow 3 shows the GenAI overview (traces), not runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
PIPELINE_TAG, ROLE_TAG = "synthaug.pipeline", "synthaug.role"
# MLflow 3.17 ignores that tag and follows the UI's GenAI / Model training switch: this address sets it.
UI_PATH = "#/experiments?workflowType=machine_learning"
BATCH_LIMIT = 100  # tags (and params) one log_batch call may carry; metrics may be 1,000

log = logging.getLogger("synthaug.core.tracking")


def strict_tracking(params_file: Path = Path("params.yaml")) -> bool:
    """tracking.strict from params.yaml; False where there is no such file (library use, tests)."""
    if not params_file.is_file():
        return False
    from synthaug.core.param_rules import load_section
    from synthaug.core.params import TrackingParams

    return load_section("tracking", TrackingParams, params_file).strict


def repo_root() -> Path:
    """The main repository: DVC_ROOT when DVC runs the stage, else the git top level, else cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return Path(top).resolve()
    except (OSError, subprocess.CalledProcessError):
        return Path.cwd().resolve()


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / STORE_FILE}"


def artifact_root(root: Path) -> str | None:
    """mlartifacts/ beside a local store; a tracking server keeps artifacts where it was told to (None)."""
    if tracking_uri(root).startswith(("http://", "https://")):
        return None
    return (root / ARTIFACT_DIR).as_uri()


def pipeline_id(params_file: Path = Path("params.yaml")) -> str:
    """Groups the stage runs of one pipeline execution: the DVC experiment, else commit + params digest."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    digest = hashlib.sha256(params_file.read_bytes()).hexdigest()[:10] if params_file.is_file() else "noparams"
    return f"workspace-{git_commit()[:10]}-{digest}"


def mlflow_key(name: str) -> str:
    """A metric or tag key MLflow accepts (letters, digits, _ - . / : and space): a composed variant's `+` reads
    ` plus `."""
    return name.replace("+", " plus ")


def run_name(stage: str, variant: str | None = None, seed: int | None = None) -> str:
    """`<stage>/<variant>/seed<k>`, shortened where a stage has no variant or seed."""
    parts = [stage] + ([variant] if variant else []) + ([f"seed{seed}"] if seed is not None else [])
    return "/".join(parts)


class RunLogger:
    """Thin wrapper over the active MLflow run that degrades to a warning if the store fails."""

    def __init__(self, mlflow_module: Any | None, strict: bool = False) -> None:
        self._mlflow = mlflow_module
        self._strict = strict

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._mlflow is not None:
            self._call_with(lambda: getattr(self._mlflow, method)(*args, **kwargs), method)

    def _call_with(self, action: Callable[[], Any], method: str) -> None:
        try:
            action()
        except Exception as exc:  # the store is a side channel: never fail the stage over it, unless asked to
            if self._strict:
                raise TrackingError(
                    f"MLflow {method} failed ({type(exc).__name__}: {exc}) and tracking.strict is true"
                ) from None
            log.warning("MLflow %s failed (%s: %s); tracking disabled for this stage", method, type(exc).__name__, exc)
            self._mlflow = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._call("log_metrics", {k: float(v) for k, v in metrics.items()}, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("log_params", {k: str(v)[:6000] for k, v in flat_params(dict(params)).items()})

    def log_artifact(self, path: str | Path) -> None:
        self._call("log_artifact", str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._call("set_tags", dict(tags))

    def log_to_pipeline_run(
        self, metrics: Mapping[str, float], tags: Mapping[str, str], artifacts: Iterable[str | Path]
    ) -> None:
        """Metrics, tags and files on the run that groups this pipeline execution (the active run's parent): the
        first row a user meets in `mlflow ui`."""
        if self._mlflow is None:
            return
        mlflow = self._mlflow

        def log() -> None:
            from mlflow.entities import Metric, RunTag

            client = mlflow.MlflowClient()
            parent = client.get_run(mlflow.active_run().info.run_id).data.tags["mlflow.parentRunId"]
            now = int(time.time() * 1000)
            logged = [Metric(mlflow_key(k), float(v), now, 0) for k, v in metrics.items()]
            tagged = [RunTag(mlflow_key(k), v[:5000]) for k, v in tags.items()]
            for start in range(0, max(len(logged), len(tagged)), BATCH_LIMIT):  # MLflow's limits per batch
                window = slice(start, start + BATCH_LIMIT)
                client.log_batch(parent, metrics=logged[window], tags=tagged[window])
            for path in artifacts:
                client.log_artifact(parent, str(path))

        self._call_with(log, "pipeline run logging")


@contextmanager
def stage_run(name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> Iterator[RunLogger]:
    """Open one MLflow run for a stage execution, with flattened params and provenance tags."""
    root = repo_root()
    strict = strict_tracking()
    mlflow = _start(root, name, strict)
    logger = RunLogger(mlflow, strict)
    logger.log_params(params)
    logger.set_tags(
        {
            "synthaug.stage": name.split("/")[0],
            PIPELINE_TAG: pipeline_id(),
            "git_commit": git_commit(),
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "workspace"),
            "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
            **(tags or {}),
        }
    )
    with _ending(logger):
        yield logger


@contextmanager
def child_run(
    parent: RunLogger, name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None
) -> Iterator[RunLogger]:
    """A run nested under `parent`'s active run (an HPO trial under its study); inactive if the parent is."""
    if not parent.active:
        yield RunLogger(None)
        return
    child = RunLogger(parent._mlflow, parent._strict)
    child._call("start_run", run_name=name, nested=True)
    child.log_params(params)
    child.set_tags(dict(tags or {}))
    with _ending(child):
        yield child


@contextmanager
def _ending(logger: RunLogger) -> Iterator[None]:
    """End the logger's active run on leaving: FINISHED, or FAILED when the block raised."""
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    finally:
        if logger.active:
            logger._call("end_run", status=status)


def main_rank_run(is_main: bool, name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None):
    """stage_run on rank 0; other ranks of a multi-process stage get a logger that records nothing."""
    from contextlib import nullcontext

    return stage_run(name, params, tags) if is_main else nullcontext(RunLogger(None))


def pipeline_run(client: Any, experiment_id: str, pipeline: str) -> str:
    """The id of the run that groups one pipeline execution's stage runs (MLflow nesting), made by its first stage.

    Two stages of one execution that start together may both make one: the earliest is kept, the other deleted.
    """
    query = f"tags.`{PIPELINE_TAG}` = '{pipeline}' and tags.`{ROLE_TAG}` = 'pipeline'"

    def existing() -> list[Any]:
        return client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=5)

    found = existing()
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=pipeline, tags={PIPELINE_TAG: pipeline, ROLE_TAG: "pipeline"})
    client.set_terminated(run.info.run_id, status="FINISHED")
    kept = existing()[0].info.run_id
    if kept != run.info.run_id:
        client.delete_run(run.info.run_id)
    return kept


def _store_experiment(root: Path) -> tuple[Any, Any]:
    """mlflow, pointed at the store, and the pipeline's experiment in it (created, with the store's tables, if
    missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(root))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        try:
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=artifact_root(root), tags=EXPERIMENT_KIND)
        except Exception:  # created concurrently by another stage: use theirs
            if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
                raise
        experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        raise RuntimeError(f"experiment {EXPERIMENT_NAME!r} missing right after it was created")
    for key, value in EXPERIMENT_KIND.items():  # a store made before the tag existed
        if experiment.tags.get(key) != value:
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return mlflow, experiment


def prepare_store() -> None:
    """Create the store's tables and the experiment before worker processes start runs in it at once: two processes
    creating a new sqlite store together fail in its schema migration. A store that cannot be reached is left for
    the workers to report, as a stage alone would."""
    try:
        _store_experiment(repo_root())
    except Exception:
        pass


def _start(root: Path, name: str, strict: bool = False) -> Any | None:
    try:
        mlflow, experiment = _store_experiment(root)
        mlflow.set_experiment(EXPERIMENT_NAME)
        parent = pipeline_run(mlflow.MlflowClient(), experiment.experiment_id, pipeline_id())
        mlflow.start_run(run_name=name, parent_run_id=parent)
        return mlflow
    except Exception as exc:
        if strict:
            raise TrackingError(
                f"MLflow unavailable at {redact_url(tracking_uri(root))} ({type(exc).__name__}: {exc}) "
                "and tracking.strict is true"
            ) from None
        log.warning(
            "MLflow unavailable at %s (%s: %s); the stage runs without tracking",
            redact_url(tracking_uri(root)),
            type(exc).__name__,
            exc,
        )
        return None
