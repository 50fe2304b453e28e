"""What the report computes from the records: the comparison's means and intervals, the verdicts (paired by seed,
Holm-corrected), each variant's compute and which generators' images are unusable."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthaug.core.variants import (
    CAREFUL_USES,
    COMPOSED_SEPARATOR,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    added_generator,
    careful_variant,
    composed_variant,
    generator_variant,
    loss_variant_of,
)
from synthaug.metrics.classification import group_scores
from synthaug.metrics.readings import GeneratorReading
from synthaug.metrics.verdicts import (
    Interval,
    corrected_verdict,
    holm_adjusted,
    paired_differences,
    paired_p_value,
    smallest_established,
    t_interval,
    verdict,
)
from synthaug.report.records import EntryResult, generator_of, run_of


def mean_std(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, 95 % t interval low, high) over seeds; NaN bounds with one seed."""
    interval = t_interval(values)
    return interval.mean, interval.std, interval.low, interval.high


def comparison_rows(results: list[EntryResult], minority: list[str]) -> list[dict]:
    """One row per (classifier, variant), in run order; metrics averaged over seeds; delta to baseline macro-F1."""
    groups: dict[tuple[str, str], list[EntryResult]] = {}
    for result in results:
        groups.setdefault((result.classifier, result.variant), []).append(result)
    rows: list[dict[str, Any]] = []
    for (classifier, variant), members in groups.items():
        minority_recall = [np.mean([m.metrics["per_class"][c]["recall"] for c in minority]) for m in members]
        rows.append(
            {
                "classifier": classifier,
                "variant": variant,
                "seeds": len(members),
                "accuracy": mean_std([m.metrics["accuracy"] for m in members]),
                "macro_f1": mean_std([m.metrics["macro_f1"] for m in members]),
                "weighted_f1": mean_std([m.metrics["weighted_f1"] for m in members]),
                "minority_recall": mean_std(minority_recall),
                "ece": mean_std([m.metrics.get("ece", float("nan")) for m in members]),  # NaN in older records
            }
        )
    baselines = {row["classifier"]: row["macro_f1"][0] for row in rows if row["variant"] == "baseline"}
    for row in rows:
        base = baselines.get(row["classifier"])
        row["delta_macro_f1"] = None if base is None else row["macro_f1"][0] - base
    return rows


# Each variant is compared, seed by seed, with these references (name in the verdict).
VERDICT_REFERENCES = {"oversampled": "oversampling", "baseline": "baseline"}


# A composed variant (synthetic_<g>+<loss variant>) is also compared with its loss variant alone: what the
# generator's images add on top of the loss-side fix.
LOSS_FIX_ALONE = "its loss fix alone"


def references_of(variant: str) -> dict[str, str]:
    """The variants `variant` is compared with -> the key of the comparison (the verdicts table's column)."""
    found = {reference: reference for reference in VERDICT_REFERENCES if reference != variant}
    if COMPOSED_SEPARATOR in variant:
        found[loss_variant_of(variant)] = LOSS_FIX_ALONE
    return found


@dataclass(frozen=True)
class Comparison:
    """One variant against one reference: the paired differences' interval (uncorrected), what it alone
    supports, the t test's p-value, Holm's adjustment over every comparison of the table, and the verdict."""

    difference: Interval
    uncorrected: str
    p_value: float
    adjusted_p: float
    verdict: str
    smallest: float = float("nan")  # smallest_established over the table's tests


ALL_CLASSES = "all"  # the verdict rows over every class, beside one per class group


def _readings(result: EntryResult, metric: str, groups: dict[str, list[str]] | None) -> dict[str, float]:
    """The result's `metric` over all classes and, with `groups`, its macro-F1 over each group's classes."""
    readings = {ALL_CLASSES: float(result.metrics[metric])}
    if groups:
        readings |= {g: scores["macro_f1"] for g, scores in group_scores(result.metrics["per_class"], groups).items()}
    return readings


def verdict_rows(
    results: list[EntryResult], metric: str = "macro_f1", groups: dict[str, list[str]] | None = None
) -> list[dict]:
    """Per (classifier, variant) and, with `groups`, per class group: the paired difference to each reference
    variant over the seeds both ran, its 95 % t interval, and the verdict after Holm's correction over all the
    comparisons returned."""
    scores: dict[tuple[str, str, str], dict[int, float]] = {}
    for result in results:
        for classes, value in _readings(result, metric, groups).items():
            scores.setdefault((result.classifier, result.variant, classes), {})[result.seed] = value
    pending: list[tuple[dict, str, str, list[float]]] = []
    rows = []
    for (classifier, variant, classes), by_seed in scores.items():
        row: dict = {"classifier": classifier, "variant": variant, "classes": classes, "comparisons": {}}
        for reference, key in references_of(variant).items():
            if (classifier, reference, classes) not in scores:
                continue
            differences = paired_differences(by_seed, scores[(classifier, reference, classes)])
            pending.append((row, key, VERDICT_REFERENCES.get(reference, reference), differences))
        if pending and pending[-1][0] is row:
            rows.append(row)
    adjusted = holm_adjusted([paired_p_value(differences) for *_, differences in pending])
    tests = sum(len(differences) >= 2 for *_, differences in pending)
    for (row, key, label, differences), adjusted_p in zip(pending, adjusted):
        difference = t_interval(differences)
        row["comparisons"][key] = Comparison(
            difference,
            verdict(difference, label),
            paired_p_value(differences),
            adjusted_p,
            corrected_verdict(difference, adjusted_p, label),
            smallest_established(difference, tests),
        )
    return rows


def group_rows(results: list[EntryResult], groups: dict[str, list[str]]) -> list[dict]:
    """Per (classifier, variant): each class group's macro-F1 and recall over the seeds (mean_std)."""
    members: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        members.setdefault((result.classifier, result.variant), []).append(
            group_scores(result.metrics["per_class"], groups)
        )
    return [
        {
            "classifier": classifier,
            "variant": variant,
            "seeds": len(scores),
            **{
                f"{score}.{group}": mean_std([s[group][score] for s in scores])
                for group in groups
                for score in ("macro_f1", "recall")
            },
        }
        for (classifier, variant), scores in members.items()
    ]


@dataclass(frozen=True)
class Compute:
    """What a variant cost, from the stages' own records: its classifier's training loop (mean over seeds) and,
    for a synthetic variant, its generator's training and the synthesis of the images it adds (paid once)."""

    classifier_seconds: float
    generator_seconds: float
    devices: tuple[str, ...]

    @property
    def total(self) -> float:
        return self.classifier_seconds + self.generator_seconds

    def describe(self) -> str:
        parts = f"{self.classifier_seconds:.0f} + {self.generator_seconds:.0f} = " if self.generator_seconds else ""
        return f"{parts}{self.total:.0f} s ({'+'.join(self.devices)})"


def generator_seconds_per_run(training: dict, synthesis: dict) -> float | None:
    """A generator run's training and synthesis seconds (pretrained: synthesis only); None when not recorded.
    Each seed pays for one run (its own, or the shared one): the stages record the sum over their runs."""
    if "seconds" not in synthesis:
        return None
    trained = float(training.get("seconds", 0.0)) / max(1, len(training.get("runs", {})))
    return trained + float(synthesis["seconds"]) / max(1, len(synthesis.get("runs", {})))


def variant_compute(
    results: list[EntryResult], trainings: dict[str, dict], syntheses: dict[str, dict]
) -> dict[tuple[str, str], Compute]:
    """(classifier, variant) -> Compute, for the entries whose stages recorded their seconds."""
    groups: dict[tuple[str, str], list[EntryResult]] = {}
    for result in results:
        groups.setdefault((result.classifier, result.variant), []).append(result)
    costs = {}
    for (classifier, variant), members in groups.items():
        if any("seconds" not in m.summary for m in members):
            continue
        devices = {m.summary["device"] for m in members}
        generator, generator_seconds = added_generator(variant), 0.0
        if generator is not None:
            training, synthesis = trainings.get(generator, {}), syntheses.get(generator, {})
            per_run = generator_seconds_per_run(training, synthesis)
            if per_run is None:
                continue
            generator_seconds = per_run
            devices |= {d for d in (training.get("device"), synthesis.get("device")) if d}
        costs[(classifier, variant)] = Compute(
            float(np.mean([m.summary["seconds"] for m in members])), generator_seconds, tuple(sorted(devices))
        )
    return costs


def cost_per_point(cost: Compute | None, reference: Compute | None, comparison: Comparison | None) -> str:
    """Extra seconds per macro-F1 point (0.01) over the reference, only where the gain is established."""
    if cost is None or reference is None or comparison is None:
        return "—"
    if not comparison.verdict.startswith("beats"):
        return f"no established gain: {comparison.verdict}"
    extra = cost.total - reference.total
    if extra <= 0:
        return f"no extra compute ({extra:+.0f} s)"
    return f"{extra / (comparison.difference.mean * 100):.1f} s"


@dataclass(frozen=True)
class UnusableRun:
    """A generator run at least half of whose added training images are of classes the fid stage found not usable
    (collapsed, or not told apart from the other classes' images by the full-data classifier)."""

    run: str
    added_images: int
    share: float  # of the added images, in the unusable classes
    classes: tuple[str, ...]


def unusable_generators(
    scores: dict[str, GeneratorReading], synthetic_counts: dict[str, dict[str, int]]
) -> dict[str, list[UnusableRun]]:
    """Generator -> its unusable runs (run_readings labels), for the generators that have one."""
    unusable: dict[str, list[UnusableRun]] = {}
    for label, result in scores.items():
        generator = generator_of(label)
        added = {c: n for c, n in synthetic_counts.get(generator, {}).items() if n > 0}
        failing = tuple(c for c in result.unusable_classes if c in added)
        share = sum(added[c] for c in failing) / max(1, sum(added.values()))
        if added and share >= 0.5:
            unusable.setdefault(generator, []).append(UnusableRun(run_of(label), sum(added.values()), share, failing))
    return unusable


def synthetic_variants(generators: Iterable[str], composed: Sequence[str]) -> set[str]:
    """The variants trained on these generators' images (composed with the loss variants `composed`, and used with
    care, too)."""
    generators = list(generators)
    return {
        *(generator_variant(prefix, g) for g in generators for prefix in (SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX)),
        *(composed_variant(g, remedy) for g in generators for remedy in composed),
        *(careful_variant(use, g) for g in generators for use in CAREFUL_USES),
    }


def unusable_variants(unusable: Iterable[str], composed: Sequence[str]) -> set[str]:
    """The variants trained on an unusable generator's images."""
    return synthetic_variants(unusable, composed)
