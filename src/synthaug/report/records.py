"""The records the stages wrote, read back as the report uses them: one per trained entry and seed, the
generator readings per run, and how they group."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthaug.core.errors import MissingInput
from synthaug.core.generator_runs import SHARED_RUN
from synthaug.core.io import read_metrics
from synthaug.metrics.readings import GeneratorReading


@dataclass(frozen=True)
class EntryResult:
    """One seed of a trained and tested (classifier, variant) entry."""

    classifier: str
    variant: str
    seed: int
    metrics: dict  # metrics/eval/<entry>/seed<k>.json
    confusion: np.ndarray  # row-normalized, metrics/confusion/<entry>/seed<k>.json
    history: list[dict]  # metrics/curves/<entry>/seed<k>.csv rows
    summary: dict = field(default_factory=dict)  # metrics/train/<entry>/seed<k>.json (train images, seconds, filter)


def entries_by_generator(results: list[EntryResult], prefix: str) -> dict[str, list[EntryResult]]:
    """<prefix><generator> entries per generator: synthetic_only_ (CAS: trained on generated images alone, tested
    on real ones) or real_equal_ (as many real images per class, CAS's reference at equal size)."""
    found: dict[str, list[EntryResult]] = {}
    for result in results:
        if result.variant.startswith(prefix):
            found.setdefault(result.variant.removeprefix(prefix), []).append(result)
    return found


def run_readings(records: dict[str, dict]) -> dict[str, GeneratorReading]:
    """Each generator run's fid readings, keyed by a label: `<g>` for a shared run, `<g> (seed<k>)` per seed."""
    readings = {}
    for generator, record in records.items():
        for run, result in record["runs"].items():
            label = generator if run == SHARED_RUN else f"{generator} ({run})"
            readings[label] = GeneratorReading.from_record(result, f"metrics/fid/{generator}.json: runs.{run}")
    return readings


def generator_of(label: str) -> str:
    """The generator of a run_readings label."""
    return label.split(" (")[0]


def run_of(label: str) -> str:
    """The run of a run_readings label."""
    return label.split(" (")[1].rstrip(")") if " (" in label else SHARED_RUN


def of_run(entries: dict[str, list[EntryResult]], label: str) -> list[EntryResult]:
    """The entries (entries_by_generator) whose seeds used this run's images (all of them for a shared run)."""
    members = entries.get(generator_of(label), [])
    return [m for m in members if m.summary.get("generator_run", run_of(label)) == run_of(label)]


def read_stage_metrics(metrics_dir: Path, relative: str | Path) -> dict:
    """A metrics file joined with its per-class detail (metrics/detail/<same path>); a missing one names dvc repro."""
    headline, detail = metrics_dir / relative, metrics_dir / "detail" / relative
    for path in (headline, detail):
        if not path.is_file():
            raise MissingInput(f"{path}: missing (run `dvc repro`: the stage that writes it has not run)")
    return read_metrics(headline, detail)


def load_entry_result(metrics_dir: Path, classifier: str, variant: str, seed: int) -> EntryResult:
    """Read one seed of one train entry's outputs; a missing file names the stage to run."""
    import csv
    import json

    entry, name = f"{classifier}-{variant}", f"seed{seed}"
    paths = {
        "metrics": metrics_dir / "eval" / entry / f"{name}.json",
        "scores_detail": metrics_dir / "detail" / "eval" / entry / f"{name}.json",
        "summary_detail": metrics_dir / "detail" / "train" / entry / f"{name}.json",
        "confusion": metrics_dir / "confusion" / entry / f"{name}.json",
        "history": metrics_dir / "curves" / entry / f"{name}.csv",
        "summary": metrics_dir / "train" / entry / f"{name}.json",
    }
    for path in paths.values():
        if not path.is_file():
            raise MissingInput(f"{path}: missing (run `dvc repro` so every train entry exists)")
    with open(paths["history"], newline="", encoding="utf-8") as handle:
        history = list(csv.DictReader(handle))
    return EntryResult(
        classifier=classifier,
        variant=variant,
        seed=seed,
        metrics=read_metrics(paths["metrics"], paths["scores_detail"]),
        confusion=np.asarray(json.loads(paths["confusion"].read_text(encoding="utf-8"))["normalized"]),
        history=history,
        summary=read_metrics(paths["summary"], paths["summary_detail"]),
    )
