"""Hyperparameter search with Optuna: a resumable study over train keys, pruned on validation macro-F1, in a sqlite
file or in a database several workers share."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import yaml

from synthaug.core.io import atomic_path, rows_csv, write_text
from synthaug.core.param_rules import parse_section
from synthaug.core.params import HpoParams, SearchRange, TrainParams
from synthaug.core.seeding import derive_seed, seed_everything
from synthaug.core.tracking import RunLogger, child_run
from synthaug.data.storage import ImageSet
from synthaug.train.classifier import EpochRecord, prepare_training, train_classifier

log = logging.getLogger("synthaug.hpo")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
COUNTED = (*FINISHED, optuna.trial.TrialState.RUNNING)


@dataclass(frozen=True)
class HpoResult:
    study: optuna.Study
    new_trials: int

    @property
    def best(self) -> optuna.trial.FrozenTrial:
        return self.study.best_trial


def suggest(trial: optuna.Trial, space: dict[str, SearchRange | list]) -> dict[str, Any]:
    """One value per searched train key: a float in its range, or one of its choices."""
    chosen: dict[str, Any] = {}
    for key, domain in space.items():
        if isinstance(domain, SearchRange):
            chosen[key] = trial.suggest_float(key, domain.low, domain.high, log=domain.log)
        else:
            chosen[key] = trial.suggest_categorical(key, list(domain))
    return chosen


def trial_params(base: TrainParams, chosen: dict[str, Any]) -> TrainParams:
    """The train section with a trial's values, validated like params.yaml (a bad space fails by key)."""
    return parse_section("train", {**base.model_dump(), **chosen}, TrainParams)


def pruning_callback(trial: optuna.Trial, warmup_epochs: int):
    """on_epoch hook: report validation macro-F1 and stop the trial when the pruner says so."""

    def on_epoch(record: EpochRecord) -> None:
        trial.report(record.val_macro_f1, record.epoch)
        if record.epoch > warmup_epochs and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {record.epoch} (val macro-F1 {record.val_macro_f1:.4f})")

    return on_epoch


def storage_url(params: HpoParams, sqlite_file: Path) -> str:
    """hpo.storage (a database several workers share), else the local sqlite file."""
    if params.storage is not None:
        return params.storage
    sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{sqlite_file.resolve()}"


def create_or_load(url: str, name: str, attempts: int = 5) -> optuna.Study:
    """The study `name` at `url`, created if missing. Workers that start together may race to create the storage's
    tables or the study: the loser waits and loads what the winner made. PostgreSQL reports the lost race as a
    unique violation or, for a table, as "already exists"."""
    for attempt in range(attempts):
        try:
            return optuna.create_study(storage=url, study_name=name, direction="maximize", load_if_exists=True)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            lost_race = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc.orig)
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(params: HpoParams, url: str, worker: int = 0) -> optuna.Study:
    """Create the study at `url`, or load it to continue. The sampler seed moves on with the study, so a resumed
    study does not replay the first run's random start-up points, and differs per worker, so two workers that
    start together do not draw the same points."""
    existing = create_or_load(url, params.study)
    # Integer parts: derive_seed reads only a string's first 8 bytes, so "trials-1" and "trials-10" would collide.
    sampler = optuna.samplers.TPESampler(seed=derive_seed(params.sampler_seed, len(existing.trials), worker) % 2**32)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=params.pruner.startup_trials, n_warmup_steps=params.pruner.warmup_epochs
    )
    return optuna.load_study(study_name=params.study, storage=url, sampler=sampler, pruner=pruner)


def finished_trials(study: optuna.Study) -> int:
    return sum(trial.state in FINISHED for trial in study.trials)


def is_surplus(study: optuna.Study, trial: optuna.Trial, wanted: int) -> bool:
    """Whether `wanted` trials were already running or finished when `trial` was asked for. Trial numbers are
    given out by the storage one at a time, so workers sharing a study never run more than `wanted` between them."""
    ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number and t.state in COUNTED]
    return len(ahead) >= wanted


def run_search(
    params: HpoParams,
    base: TrainParams,
    train_set: ImageSet,
    val_set: ImageSet,
    url: str,
    tracker: RunLogger,
    worker: int = 0,
) -> HpoResult:
    """Run trials until the study has `params.trials` finished (complete or pruned) ones, beside any other worker."""
    study = open_study(params, url, worker)

    def objective(trial: optuna.Trial) -> float:
        chosen = suggest(trial, params.space)
        train = trial_params(base, chosen)
        seed_everything(params.seed)
        setup = prepare_training(params.classifier, params.variant, train, train_set)
        pruned = None
        with child_run(
            tracker, f"trial {trial.number}", {"train": chosen}, {"optuna_trial": str(trial.number)}
        ) as child:
            report = pruning_callback(trial, params.pruner.warmup_epochs)

            def on_epoch(record: EpochRecord) -> None:
                child.log_metrics(record.to_dict(), step=record.epoch)
                report(record)

            try:
                result = train_classifier(setup, train_set, val_set, train, seed=params.seed, on_epoch=on_epoch)
            except optuna.TrialPruned as exc:
                child.set_tags({"optuna_state": "PRUNED"})
                pruned = exc
            else:
                child.log_metrics({"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch})
                child.set_tags({"optuna_state": "COMPLETE"})
        if pruned is not None:
            raise pruned
        return result.best_val_macro_f1

    ran = 0
    while sum(t.state in COUNTED for t in study.get_trials(deepcopy=False)) < params.trials:
        trial = study.ask()
        if is_surplus(study, trial, params.trials):
            trial.set_user_attr("surplus", "the study had its trials when this one was asked for")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        ran += 1
    if ran == 0:
        log.info("study %s already has %d finished trials", params.study, finished_trials(study))
    return HpoResult(study, ran)


def best_overrides(trial: optuna.trial.FrozenTrial) -> list[str]:
    """`-S train.<key>=<value>` arguments for `dvc exp run`, in a stable order."""
    return [f"-S train.{key}={value!r}" for key, value in sorted(trial.params.items())]


def trials_rows(study: optuna.Study) -> list[dict[str, Any]]:
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "val_macro_f1": "" if t.value is None else round(t.value, 6),
            "epochs": len(t.intermediate_values),
            **{f"train.{k}": v for k, v in sorted(t.params.items())},
        }
        for t in study.trials
    ]


def write_results(study: optuna.Study, out: Path) -> Path:
    """best_params.yaml (nested like params.yaml), best_overrides.txt (for dvc exp run) and trials.csv."""
    best = study.best_trial
    with atomic_path(out, directory=True) as tmp:
        (tmp / "best_params.yaml").write_text(
            yaml.safe_dump(
                {"train": dict(sorted(best.params.items())), "val_macro_f1": best.value, "trial": best.number},
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        (tmp / "best_overrides.txt").write_text(" ".join(best_overrides(best)) + "\n", encoding="utf-8")
        write_text(tmp / "trials.csv", rows_csv(trials_rows(study)))
    return out
