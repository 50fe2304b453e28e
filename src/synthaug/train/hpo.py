"""Hyperparameter search with Optuna: a resumable sqlite study over train keys, pruned on validation macro-F1."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from synthaug.data.storage import ImageSet
from synthaug.io import atomic_path, rows_csv, write_text
from synthaug.params import HpoParams, SearchRange, TrainParams, parse_section
from synthaug.seeding import derive_seed, seed_everything
from synthaug.tracking import RunLogger, child_run
from synthaug.train.classifier import EpochRecord, prepare_training, train_classifier

log = logging.getLogger("synthaug.hpo")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


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


def open_study(params: HpoParams, storage: Path) -> optuna.Study:
    """Create the study in sqlite `storage`, or load it to continue; the sampler seed moves on with it,
    so a resumed study does not replay the first run's random start-up points."""
    storage.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{storage.resolve()}"
    existing = optuna.create_study(
        storage=url,
        study_name=params.study,
        direction="maximize",
        load_if_exists=True,
    )
    sampler = optuna.samplers.TPESampler(
        seed=derive_seed(params.sampler_seed, f"trials-{len(existing.trials)}") % 2**32
    )
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=params.pruner.startup_trials, n_warmup_steps=params.pruner.warmup_epochs
    )
    return optuna.load_study(study_name=params.study, storage=url, sampler=sampler, pruner=pruner)


def finished_trials(study: optuna.Study) -> int:
    return sum(trial.state in FINISHED for trial in study.trials)


def run_search(
    params: HpoParams,
    base: TrainParams,
    train_set: ImageSet,
    val_set: ImageSet,
    storage: Path,
    tracker: RunLogger,
) -> HpoResult:
    """Run trials until the study has `params.trials` finished (complete or pruned) ones."""
    study = open_study(params, storage)
    missing = params.trials - finished_trials(study)
    if missing <= 0:
        log.info("study %s already has %d finished trials", params.study, finished_trials(study))
        return HpoResult(study, 0)

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
                result = train_classifier(
                    setup.model,
                    train_set,
                    val_set,
                    train,
                    seed=params.seed,
                    on_epoch=on_epoch,
                    loss_spec=setup.loss_spec,
                )
            except optuna.TrialPruned as exc:
                child.set_tags({"optuna_state": "PRUNED"})
                pruned = exc
            else:
                child.log_metrics({"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch})
                child.set_tags({"optuna_state": "COMPLETE"})
        if pruned is not None:
            raise pruned
        return result.best_val_macro_f1

    before = len(study.trials)
    study.optimize(objective, n_trials=missing)
    return HpoResult(study, len(study.trials) - before)


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
