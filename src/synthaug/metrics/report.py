"""The comparison report: tables (mean ± std over seeds), figures, and a self-contained HTML page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from synthaug.errors import MissingInput
from synthaug.generator_runs import SHARED_RUN
from synthaug.io import read_metrics
from synthaug.metrics.keys import distance_suffix
from synthaug.metrics.plots import draw_confusion
from synthaug.metrics.verdicts import (
    Interval,
    corrected_verdict,
    half_width,
    holm_adjusted,
    paired_differences,
    paired_p_value,
    t_interval,
    verdict,
)
from synthaug.params import (
    COMPOSED_SEPARATOR,
    DISTILLED_VARIANT,
    SYNTHETIC_ONLY_PREFIX,
    SYNTHETIC_PREFIX,
    added_generator,
    composed_variant,
    generator_variant,
    loss_variant_of,
)


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


def _mean_std(values: list[float]) -> tuple[float, float, float, float]:
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
                "accuracy": _mean_std([m.metrics["accuracy"] for m in members]),
                "macro_f1": _mean_std([m.metrics["macro_f1"] for m in members]),
                "weighted_f1": _mean_std([m.metrics["weighted_f1"] for m in members]),
                "minority_recall": _mean_std(minority_recall),
            }
        )
    baselines = {row["classifier"]: row["macro_f1"][0] for row in rows if row["variant"] == "baseline"}
    for row in rows:
        base = baselines.get(row["classifier"])
        row["delta_macro_f1"] = None if base is None else row["macro_f1"][0] - base
    return rows


def format_value(value: tuple[float, float, float, float], seeds: int) -> str:
    """`mean ± std [95 % CI]` over several seeds, the bare value for one."""
    mean, std, low, high = value
    return f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]" if seeds > 1 else f"{mean:.4f}"


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


def verdict_rows(results: list[EntryResult], metric: str = "macro_f1") -> list[dict]:
    """Per (classifier, variant): the paired difference to each reference variant's `metric` over the seeds both
    ran, its 95 % t interval, and the verdict after Holm's correction over all the comparisons returned."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for result in results:
        scores.setdefault((result.classifier, result.variant), {})[result.seed] = float(result.metrics[metric])
    pending: list[tuple[dict, str, str, list[float]]] = []
    rows = []
    for (classifier, variant), by_seed in scores.items():
        row: dict = {"classifier": classifier, "variant": variant, "comparisons": {}}
        for reference, key in references_of(variant).items():
            if (classifier, reference) not in scores:
                continue
            differences = paired_differences(by_seed, scores[(classifier, reference)])
            pending.append((row, key, VERDICT_REFERENCES.get(reference, reference), differences))
        if pending and pending[-1][0] is row:
            rows.append(row)
    adjusted = holm_adjusted([paired_p_value(differences) for *_, differences in pending])
    for (row, key, label, differences), adjusted_p in zip(pending, adjusted):
        difference = t_interval(differences)
        row["comparisons"][key] = Comparison(
            difference,
            verdict(difference, label),
            paired_p_value(differences),
            adjusted_p,
            corrected_verdict(difference, adjusted_p, label),
        )
    return rows


def _signed_interval(difference: Interval) -> str:
    if difference.n < 2:
        return f"{difference.mean:+.4f}"
    return f"{difference.mean:+.4f} [{difference.low:+.4f}, {difference.high:+.4f}], ±{half_width(difference):.4f}"


def verdict_cell(comparison: Comparison) -> str:
    """The corrected verdict with its adjusted p-value, and what the uncorrected interval said where it differs."""
    if comparison.difference.n < 2:
        return comparison.verdict
    said = f"{comparison.verdict} (Holm p {comparison.adjusted_p:.3f})"
    if comparison.uncorrected != comparison.verdict:
        said += f"; uncorrected: {comparison.uncorrected}"
    return said


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
            if "seconds" not in synthesis:
                continue
            # Each seed pays for one run (its own, or the shared one): the stages record the sum over their runs.
            generator_seconds = float(training.get("seconds", 0.0)) / max(1, len(training.get("runs", {}))) + float(
                synthesis["seconds"]
            ) / max(1, len(synthesis.get("runs", {})))  # pretrained: no training
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


def verdicts_markdown(
    rows: list[dict],
    metric_label: str = "macro-F1",
    flagged: AbstractSet[str] = frozenset(),
    costs: dict[tuple[str, str], Compute] | None = None,
    conditional: AbstractSet[str] = frozenset(),
) -> str:
    """The paired comparisons and verdicts (Holm-corrected over the table, the uncorrected interval and its
    half-width beside); with `costs`, each variant's compute and its extra seconds per macro-F1 point over
    baseline."""
    tests = sum(c.difference.n >= 2 for row in rows for c in row["comparisons"].values())
    columns = [
        *VERDICT_REFERENCES,
        *([LOSS_FIX_ALONE] if any(LOSS_FIX_ALONE in r["comparisons"] for r in rows) else []),
    ]
    header = ["classifier", "variant"]
    for reference in columns:
        header += [
            f"Δ {metric_label} vs {reference} (uncorrected 95 % CI, paired by seed; ± half-width)",
            f"vs {reference} (Holm over {tests})",
        ]
    if costs is not None:
        header += [
            "compute: classifier + generator and synthesis",
            f"extra compute per {metric_label} point (0.01) vs baseline",
        ]
    body = []
    for row in rows:
        line = [row["classifier"], variant_label(row["variant"], flagged, conditional)]
        for reference in columns:
            comparison = row["comparisons"].get(reference)
            line += (
                ["—", "—"]
                if comparison is None
                else [_signed_interval(comparison.difference), verdict_cell(comparison)]
            )
        if costs is not None:
            cost = costs.get((row["classifier"], row["variant"]))
            line += [
                cost.describe() if cost else "not recorded",
                cost_per_point(cost, costs.get((row["classifier"], "baseline")), row["comparisons"].get("baseline")),
            ]
        body.append(line)
    return markdown_table(header, body)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def per_class_recall_markdown(results: list[EntryResult], train_counts: dict[str, int]) -> str:
    """Per class (fewest imbalanced training images first): each entry's test recall, mean ± std over seeds."""
    classes = sorted(train_counts, key=lambda name: (train_counts[name], name))
    groups: dict[str, list[EntryResult]] = {}
    for result in results:
        groups.setdefault(f"{result.classifier}-{result.variant}", []).append(result)

    def cell(members: list[EntryResult], name: str) -> str:
        recalls = [m.metrics["per_class"][name]["recall"] for m in members]
        return f"{np.mean(recalls):.4f} ± {np.std(recalls, ddof=1):.4f}" if len(recalls) > 1 else f"{recalls[0]:.4f}"

    body = [[name, str(train_counts[name]), *(cell(members, name) for members in groups.values())] for name in classes]
    return markdown_table(["class", "imbalanced training images", *groups], body)


def comparison_markdown(rows: list[dict], minority: list[str], flagged: AbstractSet[str] = frozenset()) -> str:
    header = [
        "classifier",
        "variant",
        "seeds",
        "accuracy",
        "macro-F1",
        "weighted F1",
        f"minority recall ({', '.join(minority)})",
        "Δ macro-F1 vs baseline",
    ]
    body = [
        [
            row["classifier"],
            variant_label(row["variant"], flagged),
            str(row["seeds"]),
            format_value(row["accuracy"], row["seeds"]),
            format_value(row["macro_f1"], row["seeds"]),
            format_value(row["weighted_f1"], row["seeds"]),
            format_value(row["minority_recall"], row["seeds"]),
            "n/a" if row["delta_macro_f1"] is None else f"{row['delta_macro_f1']:+.4f}",
        ]
        for row in rows
    ]
    return markdown_table(header, body)


def score_suffix(scores: dict) -> str:
    """'' for Inception FID, '_classifier_features' for the classifier-feature stand-in (never mixed)."""
    return distance_suffix(scores["features"])


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _accuracy_over_seeds(results: list[EntryResult]) -> str:
    if not results:
        return "n/a"
    return format_value(_mean_std([r.metrics["accuracy"] for r in results]), len(results))


def entries_by_generator(results: list[EntryResult], prefix: str) -> dict[str, list[EntryResult]]:
    """<prefix><generator> entries per generator: synthetic_only_ (CAS: trained on generated images alone, tested
    on real ones) or real_equal_ (as many real images per class, CAS's reference at equal size)."""
    found: dict[str, list[EntryResult]] = {}
    for result in results:
        if result.variant.startswith(prefix):
            found.setdefault(result.variant.removeprefix(prefix), []).append(result)
    return found


def run_readings(records: dict[str, dict]) -> dict[str, dict]:
    """Each generator run's fid readings, keyed by a label: `<g>` for a shared run, `<g> (seed<k>)` per seed."""
    readings = {}
    for generator, record in records.items():
        for run, result in record["runs"].items():
            readings[generator if run == SHARED_RUN else f"{generator} ({run})"] = result
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


def cas_ratio(cas: list[EntryResult], equal: list[EntryResult]) -> str:
    """Mean CAS over mean real accuracy at equal size, over the seeds both ran."""
    seeds = {m.seed for m in cas} & {m.seed for m in equal}
    if not seeds:
        return "n/a"
    real = float(np.mean([m.metrics["accuracy"] for m in equal if m.seed in seeds]))
    if real == 0:
        return "n/a"
    return _number(float(np.mean([m.metrics["accuracy"] for m in cas if m.seed in seeds])) / real, 3)


def _with_images(cell: str, members: list[EntryResult]) -> str:
    return f"{cell} ({members[0].summary.get('train_images', '?')} images)" if members else cell


def generator_markdown(
    scores: dict[str, dict],
    trainings: dict[str, dict],
    cas: dict[str, list[EntryResult]],
    real: list[EntryResult],
    equal: dict[str, list[EntryResult]],
) -> str:
    """One row per generator run (run_readings): distance to the real test set with its N and dims, coverage, and
    CAS beside the accuracy of the same classifier trained on as many real images (`equal`, entries_by_generator),
    their ratio, and the accuracy on the full real data."""
    header = [
        "generator",
        "features",
        "images per side",
        "FID",
        "KID (mean ± std)",
        "precision",
        "recall",
        "diversity (generated / real)",
        "near-duplicates",
        "CAS (trained on generated)",
        "real at CAS size",
        "CAS / real at CAS size",
        "real-data accuracy (full)",
        "real classifier on generated",
        "training steps",
    ]
    body = []
    for generator, result in scores.items():
        sfx = score_suffix(result)
        features = (
            f"Inception {result['fid_dims']}-d" if not sfx else f"{result['features']} {result['fid_dims']}-d (not FID)"
        )
        fid = _number(result[f"fid{sfx}"], 3) + ("" if result["fid_full_rank"] else " (rank-deficient)")
        members, matched = of_run(cas, generator), of_run(equal, generator)
        body.append(
            [
                generator,
                features,
                str(result["fid_images"]),
                fid,
                f"{_number(result[f'kid_mean{sfx}'])} ± {_number(result[f'kid_std{sfx}'])}",
                _number(result.get(f"precision{sfx}"), 3),
                _number(result.get(f"recall{sfx}"), 3),
                _number(result.get("diversity_ratio"), 3),
                _number(result.get("near_duplicate_fraction"), 3),
                _with_images(_accuracy_over_seeds(members), members),
                _with_images(_accuracy_over_seeds(matched), matched),
                cas_ratio(members, matched),
                _with_images(_accuracy_over_seeds(real), real),
                _number(result["real_classifier_accuracy_on_generated"]),
                str(trainings.get(generator_of(generator), {}).get("steps", "pretrained")),
            ]
        )
    return markdown_table(header, body)


def unusable_generators(scores: dict[str, dict], synthetic_counts: dict[str, dict[str, int]]) -> dict[str, str]:
    """Generators with a run (run_readings label) at least half of whose added training images belong to classes
    the fid stage found not usable (collapsed, or not told apart from the other classes' images by the full-data
    classifier): generator -> the evidence, in words, run by run."""
    unusable: dict[str, str] = {}
    for label, result in scores.items():
        generator = generator_of(label)
        added = {c: n for c, n in synthetic_counts.get(generator, {}).items() if n > 0}
        failing = [c for c in result["unusable_classes"] if c in added]
        share = sum(added[c] for c in failing) / max(1, sum(added.values()))
        if added and share >= 0.5:
            where = "" if label == generator else f"in run {run_of(label)}, "
            evidence = where + (
                f"{share:.0%} of the {sum(added.values())} images it adds to training are of classes whose generated "
                f"images are collapsed or that the full-data classifier does not tell from the other classes' "
                f"({', '.join(failing)}: own − others below fid.usable_margin {result['usable_margin']:g}, or not "
                f"significant at {result['usable_level']:g}, on {result['per_class'][failing[0]]['images']} "
                "evaluation images each)"
            )
            unusable[generator] = f"{unusable[generator]}; {evidence}" if generator in unusable else evidence
    return unusable


def synthetic_variants(generators: Iterable[str], composed: Sequence[str]) -> set[str]:
    """The variants trained on these generators' images (composed with the loss variants `composed` too)."""
    return {
        *(generator_variant(prefix, g) for g in generators for prefix in (SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX)),
        *(composed_variant(g, remedy) for g in generators for remedy in composed),
    }


def unusable_variants(unusable: dict[str, str], composed: Sequence[str]) -> set[str]:
    """The variants trained on an unusable generator's images."""
    return synthetic_variants(unusable, composed)


def unusable_note(unusable: dict[str, str]) -> str:
    return " ".join(
        f"**Unusable images from {g}**: {why}. Its synthetic variants measure images a classifier cannot recognise, "
        "whatever their score."
        for g, why in unusable.items()
    )


def variant_label(variant: str, flagged: AbstractSet[str], conditional: AbstractSet[str] = frozenset()) -> str:
    label = f"{variant} (unusable images)" if variant in flagged else variant
    return f"{label} (conditional on one generator run)" if variant in conditional else label


def collapse_notes(scores: dict[str, dict]) -> list[str]:
    """One line per generator with collapsed classes: their names and diversity ratios."""
    return [
        f"**Collapsed classes from {g}**: "
        + ", ".join(f"{c} ({result['per_class'][c]['diversity_ratio']:.2f})" for c in result["collapsed_classes"])
        + f". Their generated images' mean pairwise feature distance is below {result['collapse_ratio']:g} of the "
        "real test images' (fid.collapse_ratio): the generator draws nearly the same image whatever its latent."
        for g, result in scores.items()
        if result.get("collapsed_classes")
    ]


def generator_notes(scores: dict[str, dict]) -> list[str]:
    """The caveats a reader must see above the generator table, from what the fid stage recorded."""
    notes = collapse_notes(scores)
    fallback = {
        g: r["inception_unavailable"] for g, r in scores.items() if score_suffix(r) and r.get("inception_unavailable")
    }
    if fallback:
        reason = next(iter(fallback.values()))
        names = ", ".join(dict.fromkeys(map(generator_of, fallback)))
        notes.append(
            f"**Not Inception FID** for {names}: {reason}. Their distances use a classifier's "
            "features and cannot be compared with published FID."
        )
    deficient = [g for g, r in scores.items() if not r["fid_full_rank"]]
    if deficient:
        names = ", ".join(dict.fromkeys(map(generator_of, deficient)))
        notes.append(
            f"**Rank-deficient FID** for {names}: {scores[deficient[0]]['fid_images']} images per side "
            f"on {scores[deficient[0]]['fid_dims']}-d features (FID needs more images than dimensions); "
            "read KID, which is unbiased at any size, or lower fid.dims."
        )
    sharper = [g for g, r in scores.items() if r.get("image_size", 0) > r.get("real_image_size", 0)]
    if sharper:
        reading = scores[sharper[0]]
        names = ", ".join(dict.fromkeys(map(generator_of, sharper)))
        notes.append(
            f"**Generated images sharper than the real ones** from {names}: stored at {reading['image_size']} px "
            f"beside real images of {reading['real_image_size']} px, both resized per batch to the classifier's "
            "input. A classifier can tell them apart by sharpness alone, and FID reads the resolution gap too; "
            "synthesize.sdxl_turbo.image_size=null stores them at the real images' size."
        )
    lossy = {g: r for g, r in scores.items() if r.get("real_images_lossy")}
    if lossy:
        encodings = ", ".join(f"{n} {name}" for name, n in next(iter(lossy.values()))["real_image_encodings"].items())
        notes.append(
            f"The real images were decoded from a lossy format ({encodings}): compression artefacts alone move "
            "FID, so compare these values only with FIDs computed on the same decoded set."
        )
    return notes


def recognition_cell(entry: dict) -> str:
    """own share − others' share = margin [interval], as the judge labels one class's generated images."""
    return (
        f"{entry['recognition']:.2f} − {entry['false_recognition']:.2f} = {entry['recognition_margin']:+.2f} "
        f"[{entry['recognition_margin_low']:+.2f}, {entry['recognition_margin_high']:+.2f}]"
    )


def per_class_generator_markdown(
    scores: dict[str, dict], class_names: list[str], cas: dict[str, list[EntryResult]]
) -> str:
    """Per class: KID (unbiased at these sizes; no per-class FID), the images compared, CAS recall, and how the
    full-data classifier labels the class's generated images against the other classes' (the usability test)."""
    header = ["class"] + [
        f"{g} {metric}"
        for g in scores
        for metric in ("KID", "images", "diversity", "CAS recall", "judge: own − others [95 % CI]", "usable")
    ]
    body = []
    for name in class_names:
        row = [name]
        for generator, result in scores.items():
            entry, sfx = result["per_class"][name], score_suffix(result)
            members = of_run(cas, generator)
            recall = float(np.mean([m.metrics["per_class"][name]["recall"] for m in members])) if members else None
            row += [
                _number(entry[f"kid_mean{sfx}"]),
                str(entry["images"]),
                _number(entry.get("diversity_ratio"), 2) + (" (collapsed)" if entry.get("collapsed") else ""),
                _number(recall),
                recognition_cell(entry),
                "yes" if entry["usable"] else ("no: collapsed" if entry.get("collapsed") else "no"),
            ]
        body.append(row)
    return markdown_table(header, body)


def distillation_note(results: list[EntryResult]) -> str:
    """Which teacher each distilled entry learnt from (its compute counts the student's loop only), or nothing."""
    taught = {
        f"{r.classifier}-{r.variant}": r.summary["teacher"]
        for r in results
        if r.variant == DISTILLED_VARIANT and "teacher" in r.summary
    }
    if not taught:
        return ""
    pairs = "; ".join(f"{student} from {teacher}" for student, teacher in taught.items())
    return f" Distilled (same seed's teacher; its compute is the student's loop only): {pairs}."


def filter_note(results: list[EntryResult], configured_judge: str) -> str:
    """What the synthetic filter did to each synthetic variant (judge, kept fraction per class), or that it was off."""
    lines = []
    for result in results:
        judge = result.summary.get("synthetic_filter_judge")
        if judge and added_generator(result.variant) and result.seed == results[0].seed:
            kept = ", ".join(f"{c} {f:.2f}" for c, f in result.summary.get("synthetic_kept_fraction", {}).items())
            lines.append(f"{result.classifier}-{result.variant}: judge {result.classifier}-{judge}, kept {kept}")
    if not lines:
        return (
            "Synthetic filter: off (every generated image is used; "
            f"train.synthetic_filter.judge is {configured_judge})."
        )
    return (
        "Synthetic filter (seed "
        + str(results[0].seed)
        + "; fraction of generated images kept per class): "
        + "; ".join(lines)
        + "."
    )


def _swept_value(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sweep_cell(row: dict | None) -> str:
    """val mean / test mean, with the stds and the seeds when the point ran more than one."""
    if row is None:
        return "n/a"
    if row["seeds"] > 1:
        return (
            f"{_number(row['val_mean'])} ± {_number(row['val_std'])} / {_number(row['mean'])} ± "
            f"{_number(row['std'])} ({row['seeds']} seeds)"
        )
    return f"{_number(row['val_mean'])} / {_number(row['mean'])}"


def sweep_markdown(rows: list[dict]) -> str:
    """A collected sweep (synthaug.metrics.sweeps): one line per classifier/variant, one column per value; each
    cell validation / test macro-F1, and the value chosen on validation."""
    from synthaug.metrics.sweeps import chosen_values

    labels = list(dict.fromkeys(f"{r['classifier']}/{r['variant']}" for r in rows))
    values = list(dict.fromkeys(r["value"] for r in rows))
    cells = {(f"{r['classifier']}/{r['variant']}", r["value"]): r for r in rows}
    chosen = chosen_values(rows)
    header = (
        [f"{rows[0]['param']} → (val macro-F1 / test {rows[0]['metric']})"]
        + [_swept_value(v) for v in values]
        + ["chosen on validation"]
    )
    body = [
        [label, *(_sweep_cell(cells.get((label, v))) for v in values)]
        + [_swept_value(chosen[label]) if label in chosen else "no validation scores"]
        for label in labels
    ]
    return markdown_table(header, body)


def model_profile_markdown(profiles: list[dict]) -> str:
    header = [
        "classifier",
        "device",
        "input",
        "parameters",
        "trainable",
        "MMACs / image",
        "latency (ms, batch 1)",
        "throughput (images/s)",
        "peak memory (MB)",
    ]
    body = [
        [
            p["classifier"],
            p["device"],
            f"{p['image_size']} px",
            f"{p['parameters']:,}",
            f"{p['trainable_parameters']:,}",
            f"{p['macs_per_image'] / 1e6:.2f}",
            f"{p['latency_ms']:.2f}",
            f"{p['throughput_images_per_s']:.0f} (batch {p['batch_size']})",
            f"{p['peak_memory_mb']:.1f}",
        ]
        for p in profiles
    ]
    return markdown_table(header, body)


# --- figures ---------------------------------------------------------------------------------------


def sweep_heatmap_figure(rows: list[dict]) -> Figure:
    """Coloured by mean validation macro-F1 per (classifier/variant, swept value), each cell also giving the
    test mean; the value chosen on validation is boxed; blank cells were not run."""
    from synthaug.metrics.sweeps import chosen_values, sweep_matrix

    labels, values, validation = sweep_matrix(rows, "val_mean")
    _, _, test = sweep_matrix(rows, "mean")
    figure, axes = plt.subplots(figsize=(1.3 * len(values) + 3.0, 0.55 * len(labels) + 1.6))
    image = axes.imshow(np.ma.masked_invalid(validation), cmap="viridis", aspect="auto")
    middle = np.nanmean(validation) if np.isfinite(validation).any() else 0.0
    for (i, j), value in np.ndenumerate(test):
        if np.isfinite(value):
            axes.text(
                j,
                i,
                f"val {validation[i, j]:.3f}\ntest {value:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if not validation[i, j] >= middle else "black",
            )
    for label, value in chosen_values(rows).items():
        i, j = labels.index(label), values.index(value)
        axes.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    axes.set_xticks(np.arange(len(values)), [_swept_value(v) for v in values])
    axes.set_yticks(np.arange(len(labels)), labels)
    axes.set_xlabel(rows[0]["param"])
    axes.set_title(f"Validation macro-F1 (colour; boxed: chosen) and test {rows[0]['metric']} by {rows[0]['param']}")
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    return figure


def recall_vs_count_figure(
    results: list[EntryResult], real_counts: dict[str, int], synthetic_counts: dict[str, dict[str, int]]
) -> Figure:
    """Per class (fewest training images first): training counts, and each variant's recall.

    One bar per generator, side by side: the real images with that generator's synthetic ones stacked
    on top, i.e. one synthetic variant's training set (stacking all generators would count images
    no single variant trained on).
    """
    classes = sorted(real_counts, key=lambda name: (real_counts[name], name))
    x = np.arange(len(classes))
    figure, counts_axes = plt.subplots(figsize=(11, 4.5))
    real = np.array([real_counts[c] for c in classes], dtype=float)
    generators: list[str | None] = [*synthetic_counts] or [None]
    width = 0.8 / len(generators)
    for index, generator in enumerate(generators):
        position = x - 0.4 + width * (index + 0.5)
        counts_axes.bar(position, real, width, color="0.85", label="real (imbalanced)" if index == 0 else None)
        if generator is not None:
            extra = np.array([synthetic_counts[generator].get(c, 0) for c in classes], dtype=float)
            counts_axes.bar(
                position, extra, width, bottom=real, color=plt.cm.Pastel1(index), label=f"+ synthetic ({generator})"
            )
    counts_axes.set_ylabel("training images")
    counts_axes.set_xticks(x, classes, rotation=30, ha="right")
    recall_axes = counts_axes.twinx()
    by_variant: dict[str, list[EntryResult]] = {}
    for result in results:
        by_variant.setdefault(f"{result.classifier}-{result.variant}", []).append(result)
    for label, members in by_variant.items():
        per_seed = np.array([[m.metrics["per_class"][c]["recall"] for c in classes] for m in members])
        spread = per_seed.std(axis=0, ddof=1) if len(members) > 1 else None  # sample std over seeds
        recall_axes.errorbar(x, per_seed.mean(axis=0), yerr=spread, marker="o", capsize=2, label=label)
    recall_axes.set_ylim(0, 1)
    recall_axes.set_ylabel("test recall")
    handles = counts_axes.get_legend_handles_labels()
    more = recall_axes.get_legend_handles_labels()
    recall_axes.legend(
        handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0)
    )
    counts_axes.set_title("Per-class test recall against training images per class (fewest first)")
    figure.tight_layout()
    return figure


def confusions_figure(results: list[EntryResult], class_names: list[str]) -> Figure:
    """Row-normalized test confusion matrices side by side (first seed of each variant)."""
    firsts: dict[str, EntryResult] = {}
    for result in results:
        firsts.setdefault(f"{result.classifier}-{result.variant}", result)
    figure, axes = plt.subplots(1, len(firsts), figsize=(3.2 * len(firsts) + 0.5, 3.6), squeeze=False)
    for axis, (label, result) in zip(axes[0], firsts.items()):
        draw_confusion(axis, result.confusion, class_names, f"{label} (seed {result.seed})", small=True)
    axes[0][0].set_ylabel("actual", fontsize=7)
    figure.tight_layout()
    return figure


def curves_figure(results: list[EntryResult]) -> Figure:
    """Training loss and validation macro-F1 per epoch, one line per entry."""
    figure, (loss_axes, f1_axes) = plt.subplots(1, 2, figsize=(10, 3.8))
    for result in results:
        epochs = [int(row["epoch"]) for row in result.history]
        label = f"{result.classifier}-{result.variant}-seed{result.seed}"
        loss_axes.plot(epochs, [float(row["train_loss"]) for row in result.history], marker=".", label=label)
        f1_axes.plot(epochs, [float(row["val_macro_f1"]) for row in result.history], marker=".", label=label)
    for axes in (loss_axes, f1_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    f1_axes.set(xlabel="epoch", ylabel="validation macro-F1", title="Validation macro-F1")
    f1_axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def class_counts_figure(counts: dict[str, dict[str, int]], synthetic_counts: dict[str, dict[str, int]]) -> Figure:
    """Training images per class: before imbalancing (full), after (train), after rebalancing (+synthetic)."""
    classes = list(counts["full"])
    x = np.arange(len(classes))
    series = {"before imbalance": counts["full"], "after imbalance": counts["train"]}
    for generator, extra in synthetic_counts.items():
        series[f"+ {generator}"] = {c: counts["train"][c] + extra.get(c, 0) for c in classes}
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(9, 3.8))
    for i, (label, values) in enumerate(series.items()):
        axes.bar(x + (i - (len(series) - 1) / 2) * width, [values[c] for c in classes], width, label=label)
    axes.set_xticks(x, classes, rotation=30, ha="right")
    axes.set_ylabel("training images")
    axes.set_title("Class counts")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


# --- inputs ----------------------------------------------------------------------------------------


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
