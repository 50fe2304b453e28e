"""Sweeps run by DVC (`dvc exp run --queue -S 'key=range(...)'`), collected into one table per swept key.

The source is `dvc exp show --json`: every experiment's params, every train entry's test scores
(metrics/eval/<entry>/seed<k>.json) and its best validation macro-F1 and training seconds
(metrics/train/<entry>/seed<k>.json), without the column-name guessing of the CSV view (which prefixes a metric with
its file only when two files share the name). One row per (value, classifier, variant): the validation and test
means over seeds and runs, the test metric's 95 % t interval, and for a variant that adds a generator's images how
many it added per class and what a seed cost. A value is chosen on validation; test is shown beside it, never used
to choose.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.core.errors import SweepError
from synthaug.core.variants import added_generator
from synthaug.metrics.verdicts import t_interval
from synthaug.report.summaries import generator_seconds_per_run

ENTRY_METRICS = re.compile(
    r"^metrics/(?P<kind>eval|train)/(?P<classifier>[a-z0-9_]+)-(?P<variant>[a-z0-9_]+)/seed(?P<seed>\d+)\.json$"
)
VALIDATION_KEY = "best_val_macro_f1"  # the train summary's headline: what each entry selected its epoch on
SWEEP_FIELDS = [
    "param",
    "value",
    "classifier",
    "variant",
    "metric",
    "val_mean",
    "val_std",
    "mean",
    "std",
    "seeds",
    "runs",
    "experiments",
    "low",
    "high",
    "generated_per_class",
    "compute_seconds",
]
# Columns older tables lack; they read as NaN.
LATER_FIELDS = ("low", "high", "generated_per_class", "compute_seconds")


@dataclass(frozen=True)
class SweepPoint:
    experiment: str
    value: float | str
    classifier: str
    variant: str
    seed: int
    score: float
    val_score: float  # NaN when the entry recorded no validation score
    seconds: float = math.nan  # the classifier's training seconds; NaN when not recorded


@dataclass(frozen=True)
class GeneratorAmount:
    """A generator's images in one experiment: images added per class (mean over the classes), and what one run
    cost (its training and synthesis seconds)."""

    per_class: float
    seconds: float


def generator_amounts(
    repo: Path, experiments: dict[str, str], generators: set[str]
) -> dict[tuple[str, str], GeneratorAmount]:
    """(experiment, generator) -> GeneratorAmount, from each experiment's metrics/synthetic/<g>.json and
    metrics/generators/<g>.json in the local DVC cache (where `dvc exp run` left them); missing ones are skipped."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException

    amounts = {}
    for name, rev in experiments.items():
        files = DVCFileSystem(str(repo), rev=rev)  # one view of the experiment for all its records
        for generator in sorted(generators):
            try:
                synthesis = json.loads(files.read_text(f"metrics/synthetic/{generator}.json"))
                training = json.loads(files.read_text(f"metrics/generators/{generator}.json"))
            except (FileNotFoundError, DvcException):
                continue
            seconds = generator_seconds_per_run(training, synthesis)
            per_class = synthesis["synthetic_total"] / max(1, len(synthesis["synthetic_per_class"]))
            amounts[(name, generator)] = GeneratorAmount(per_class, math.nan if seconds is None else seconds)
    return amounts


def exp_show(repo: Path) -> list[dict[str, Any]]:
    """`dvc exp show --json` of the repository: its HEAD, the workspace and their experiments."""
    result = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise SweepError(
            f"dvc exp show failed in {repo}: {result.stderr.strip().splitlines()[-1:] or result.returncode}"
        )
    return json.loads(result.stdout)


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _revisions(exp_show_json: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, rev, data) of each committed baseline and each experiment; the workspace repeats HEAD and is skipped."""
    found = []
    for commit in exp_show_json:
        if commit.get("rev") != "workspace" and commit.get("data"):
            found.append((commit.get("name") or commit["rev"][:7], commit["rev"], commit["data"]))
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                if revision.get("data") and not revision.get("error"):
                    found.append((revision.get("name") or revision["rev"][:7], revision["rev"], revision["data"]))
    return found


def _params_of(data: dict[str, Any]) -> dict[str, Any]:
    return (data.get("params") or {}).get("params.yaml", {}).get("data") or {}


def _matches(params: dict[str, Any], param: str, where: dict[str, Any] | None) -> bool:
    return _lookup(params, param) is not None and all(
        _lookup(params, key) == value for key, value in (where or {}).items()
    )


def sweep_provenance(
    exp_show_json: list[dict[str, Any]], param: str, where: dict[str, Any] | None, repo: Path, experiments: set[str]
) -> dict[str, Any]:
    """What a sweep table was made from: each experiment's commit, the code digest at those commits, and the params
    the experiments share (the swept key aside); keys that differ between them are listed in `params_vary`."""
    from synthaug.core.provenance import code_digest, flat_params, params_differences

    chosen = [
        (name, rev, flat_params(_params_of(data)))
        for name, rev, data in _revisions(exp_show_json)
        if name in experiments and _matches(_params_of(data), param, where)
    ]
    shared: dict[str, Any] = dict(chosen[0][2]) if chosen else {}
    vary = {key for _, _, params in chosen[1:] for key in params_differences(shared, params, ignore=(param,))}
    shared.pop(param, None)
    return {
        "param": param,
        "experiments": {name: rev for name, rev, _ in chosen},
        "code": sorted({str(code_digest(repo, rev)) for _, rev, _ in chosen}),
        "params": {key: value for key, value in sorted(shared.items()) if key not in vary},
        "params_vary": sorted(vary),
    }


def provenance_file(table: Path) -> Path:
    """The provenance record beside a sweep table: metrics/sweeps/<key>.provenance.json."""
    return table.with_suffix(".provenance.json")


def sweep_staleness(
    provenance: dict[str, Any] | None, current_code: str | None, current_params: dict[str, Any]
) -> str | None:
    """None when the sweep was made by this code with these params (its swept key aside), else why it was not."""
    from synthaug.core.provenance import params_differences

    if provenance is None:
        return "no provenance recorded: the code and params it was made with are unknown"
    if current_code is None:
        return "this run's code cannot be identified (no git repository)"
    if provenance["code"] != [current_code]:
        commits = ", ".join(sorted({rev[:7] for rev in provenance["experiments"].values()}))
        return f"made with other code (experiments at {commits})"
    if provenance["params_vary"]:
        return f"its experiments differ in {', '.join(provenance['params_vary'])}"
    differ = params_differences(provenance["params"], current_params, ignore=(provenance["param"],))
    if differ:
        return f"made with other params: {', '.join(differ)}"
    return None


def _as_value(raw: Any) -> float | str:
    return float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else json.dumps(raw)


def sweep_points(
    exp_show_json: list[dict[str, Any]], param: str, metric: str = "macro_f1", where: dict[str, Any] | None = None
) -> list[SweepPoint]:
    """Every evaluated entry of every revision that sets `param` (and matches each `where` key = value), with
    its test `metric` and its best validation macro-F1."""
    points = []
    for name, _, data in _revisions(exp_show_json):
        params = _params_of(data)
        if not _matches(params, param, where):
            continue
        raw = _lookup(params, param)
        found: dict[str, dict[tuple[str, str, int], float]] = {"eval": {}, "train": {}, "seconds": {}}
        for path, content in (data.get("metrics") or {}).items():
            match = ENTRY_METRICS.match(path)
            if not match:
                continue
            keys = {"eval": metric} if match["kind"] == "eval" else {"train": VALIDATION_KEY, "seconds": "seconds"}
            for kind, key in keys.items():
                score = (content.get("data") or {}).get(key)
                if isinstance(score, (int, float)) and not isinstance(score, bool):
                    found[kind][(match["classifier"], match["variant"], int(match["seed"]))] = float(score)
        for entry, score in found["eval"].items():
            val_score, seconds = found["train"].get(entry, math.nan), found["seconds"].get(entry, math.nan)
            points.append(SweepPoint(name, _as_value(raw), *entry, score, val_score, seconds))
    return points


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value) of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return round(float(np.mean(finite)), 6), round(std, 6)


def _amount(
    members: list[SweepPoint], variant: str, amounts: dict[tuple[str, str], GeneratorAmount]
) -> tuple[float, float]:
    """Generated images per class and seconds per seed (classifier + one generator run) of one sweep cell; the
    first is NaN for a variant that adds no generated images."""
    classifier_seconds = _mean_std([m.seconds for m in members])[0]
    generator = added_generator(variant)
    if generator is None:
        return math.nan, round(classifier_seconds, 1)
    found = [amounts[(m.experiment, generator)] for m in members if (m.experiment, generator) in amounts]
    if not found:
        return math.nan, math.nan
    generated = round(float(np.mean([a.per_class for a in found])), 1)
    return generated, round(classifier_seconds + float(np.mean([a.seconds for a in found])), 1)


def sweep_rows(
    points: list[SweepPoint],
    param: str,
    metric: str,
    amounts: dict[tuple[str, str], GeneratorAmount] | None = None,
) -> list[dict[str, Any]]:
    """Mean and sample std of the metric per (value, classifier, variant), values in ascending order, with the
    metric's 95 % t interval over the runs and, from `amounts`, the generated images per class and compute."""
    if not points:
        raise SweepError(
            f"no experiment sets {param} and has test metrics (run the sweep first: see docs/operations.md, Sweeps)"
        )
    groups: dict[tuple, list[SweepPoint]] = {}
    for point in points:
        groups.setdefault((point.value, point.classifier, point.variant), []).append(point)
    variant_order = list(dict.fromkeys((p.classifier, p.variant) for p in points))
    rows = []
    for (value, classifier, variant), members in sorted(
        groups.items(), key=lambda item: (str(type(item[0][0])), item[0][0], variant_order.index(item[0][1:]))
    ):
        mean, std = _mean_std([m.score for m in members])
        val_mean, val_std = _mean_std([m.val_score for m in members])
        interval = t_interval([m.score for m in members])
        generated, seconds = _amount(members, variant, amounts or {})
        rows.append(
            {
                "param": param,
                "value": value,
                "classifier": classifier,
                "variant": variant,
                "metric": metric,
                "val_mean": val_mean,
                "val_std": val_std,
                "mean": mean,
                "std": std,
                "seeds": len({m.seed for m in members}),
                "runs": len(members),
                "experiments": " ".join(sorted({m.experiment for m in members})),
                "low": round(interval.low, 6),
                "high": round(interval.high, 6),
                "generated_per_class": generated,
                "compute_seconds": seconds,
            }
        )
    return rows


def chosen_values(rows: list[dict[str, Any]]) -> dict[str, float | str]:
    """Per `classifier/variant`: the swept value with the best mean validation macro-F1 (rows without a
    validation score cannot be chosen)."""
    best: dict[str, tuple[float, float | str]] = {}
    for row in rows:
        label = f"{row['classifier']}/{row['variant']}"
        if math.isfinite(row["val_mean"]) and (label not in best or row["val_mean"] > best[label][0]):
            best[label] = (row["val_mean"], row["value"])
    return {label: value for label, (_, value) in best.items()}


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SWEEP_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_sweep_csv(path: Path) -> list[dict[str, Any]]:
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    missing = set(SWEEP_FIELDS) - set(LATER_FIELDS) - set(rows[0] if rows else SWEEP_FIELDS)
    if missing:
        raise SweepError(f"{path}: not a sweep table (missing columns {sorted(missing)})")
    for row in rows:
        try:
            row["value"] = float(row["value"])
        except ValueError:
            pass
        for key in ("val_mean", "val_std", "mean", "std", *LATER_FIELDS):
            row[key] = float(row[key]) if row.get(key) not in (None, "", "nan") else math.nan
        row["seeds"], row["runs"] = int(row["seeds"]), int(row["runs"])
    return rows


def sweep_matrix(rows: list[dict[str, Any]], key: str = "mean") -> tuple[list[str], list[float | str], np.ndarray]:
    """(row labels `classifier/variant`, column values, matrix of `key` (the test mean, or val_mean) with NaN
    where a cell was not run)."""
    labels = list(dict.fromkeys(f"{r['classifier']}/{r['variant']}" for r in rows))
    values = list(dict.fromkeys(r["value"] for r in rows))
    matrix = np.full((len(labels), len(values)), math.nan)
    for row in rows:
        matrix[labels.index(f"{row['classifier']}/{row['variant']}"), values.index(row["value"])] = row[key]
    return labels, values, matrix


def sweep_file_name(param: str, metric: str = "macro_f1") -> str:
    """<param>.csv for macro-F1, <param>.<metric>.csv for another test metric: one table per pair."""
    return f"{param}.csv" if metric == "macro_f1" else f"{param}.{metric}.csv"
