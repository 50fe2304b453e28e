"""The report's Markdown tables, and the cell formats they share."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import numpy as np

from synthaug.metrics.calibration import ECE_BINS
from synthaug.metrics.readings import ClassReading, GeneratorReading
from synthaug.metrics.verdicts import (
    half_width,
)
from synthaug.report.records import EntryResult, generator_of, of_run, run_of
from synthaug.report.summaries import (
    ALL_CLASSES,
    LOSS_FIX_ALONE,
    VERDICT_REFERENCES,
    Comparison,
    Compute,
    UnusableRun,
    cost_per_point,
    mean_std,
)


def format_value(value: tuple[float, float, float, float], seeds: int) -> str:
    """`mean ± std [95 % CI]` over several seeds, the bare value for one; n/a where a record lacks it."""
    mean, std, low, high = value
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]" if seeds > 1 else f"{mean:.4f}"


def _signed_interval(comparison: Comparison) -> str:
    difference = comparison.difference
    if difference.n < 2:
        return f"{difference.mean:+.4f}"
    return (
        f"{difference.mean:+.4f} [{difference.low:+.4f}, {difference.high:+.4f}], ±{half_width(difference):.4f}; "
        f"Holm ±{comparison.smallest:.4f}"
    )


def verdict_cell(comparison: Comparison) -> str:
    """The corrected verdict with its adjusted p-value, and what the uncorrected interval said where it differs."""
    if comparison.difference.n < 2:
        return comparison.verdict
    said = f"{comparison.verdict} (Holm p {comparison.adjusted_p:.3f})"
    if comparison.uncorrected != comparison.verdict:
        said += f"; uncorrected: {comparison.uncorrected}"
    return said


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
    grouped = any(row.get("classes", ALL_CLASSES) != ALL_CLASSES for row in rows)
    header = ["classifier", "variant", *(["classes"] if grouped else [])]
    for reference in columns:
        header += [
            f"Δ {metric_label} vs {reference} [95 % CI], ± half-width; Holm: smallest established",
            f"vs {reference} (Holm over {tests})",
        ]
    if costs is not None:
        header += [
            "compute: classifier + generator",
            f"extra compute per {metric_label} point vs baseline",
        ]
    body = []
    for row in rows:
        line = [row["classifier"], variant_label(row["variant"], flagged, conditional)]
        line += [row.get("classes", ALL_CLASSES)] if grouped else []
        for reference in columns:
            comparison = row["comparisons"].get(reference)
            line += ["—", "—"] if comparison is None else [_signed_interval(comparison), verdict_cell(comparison)]
        if costs is not None:
            cost = costs.get((row["classifier"], row["variant"]))
            line += [
                cost.describe() if cost else "not recorded",
                cost_per_point(cost, costs.get((row["classifier"], "baseline")), row["comparisons"].get("baseline")),
            ]
        body.append(line)
    return markdown_table(header, body)


def group_markdown(rows: list[dict], groups: dict[str, list[str]], flagged: AbstractSet[str] = frozenset()) -> str:
    """Each entry's macro-F1 and recall over each class group's classes (group_rows), with intervals."""
    header = ["classifier", "variant"] + [
        f"{label} {group} ({len(groups[group])})"
        for score, label in (("macro_f1", "macro-F1"), ("recall", "recall"))
        for group in groups
    ]
    body = [
        [row["classifier"], variant_label(row["variant"], flagged)]
        + [format_value(row[f"{score}.{group}"], row["seeds"]) for score in ("macro_f1", "recall") for group in groups]
        for row in rows
    ]
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


def weighted_equals_macro(rows: list[dict]) -> bool:
    """Whether weighted F1 repeats macro-F1 to the printed digit in every row (true on a balanced test split)."""
    return all(
        format_value(row["weighted_f1"], row["seeds"]) == format_value(row["macro_f1"], row["seeds"]) for row in rows
    )


def comparison_markdown(rows: list[dict], minority: list[str], flagged: AbstractSet[str] = frozenset()) -> str:
    """Each entry's test scores over the seeds; weighted F1 only where it differs from macro-F1."""
    weighted = not weighted_equals_macro(rows)
    header = [
        "classifier",
        "variant",
        "seeds",
        "accuracy",
        "macro-F1",
        *(["weighted F1"] if weighted else []),
        f"minority recall ({', '.join(minority)})",
        f"ECE ({ECE_BINS} bins)",
        "Δ macro-F1 vs baseline",
    ]
    body = [
        [
            row["classifier"],
            variant_label(row["variant"], flagged),
            str(row["seeds"]),
            format_value(row["accuracy"], row["seeds"]),
            format_value(row["macro_f1"], row["seeds"]),
            *([format_value(row["weighted_f1"], row["seeds"])] if weighted else []),
            format_value(row["minority_recall"], row["seeds"]),
            format_value(row["ece"], row["seeds"]),
            "n/a" if row["delta_macro_f1"] is None else f"{row['delta_macro_f1']:+.4f}",
        ]
        for row in rows
    ]
    return markdown_table(header, body)


def unusable_markdown(unusable: dict[str, list[UnusableRun]]) -> str:
    """One row per unusable generator run: the images it adds and the share in classes found not usable."""
    body = [
        [generator, run.run, str(run.added_images), f"{run.share:.0%}", ", ".join(run.classes)]
        for generator, runs in unusable.items()
        for run in runs
    ]
    return markdown_table(["generator", "run", "images added", "share in unusable classes", "unusable classes"], body)


def number_cell(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _accuracy_over_seeds(results: list[EntryResult]) -> str:
    if not results:
        return "n/a"
    return format_value(mean_std([r.metrics["accuracy"] for r in results]), len(results))


def cas_ratio(cas: list[EntryResult], equal: list[EntryResult]) -> str:
    """Mean CAS over mean real accuracy at equal size, over the seeds both ran."""
    seeds = {m.seed for m in cas} & {m.seed for m in equal}
    if not seeds:
        return "n/a"
    real = float(np.mean([m.metrics["accuracy"] for m in equal if m.seed in seeds]))
    if real == 0:
        return "n/a"
    return number_cell(float(np.mean([m.metrics["accuracy"] for m in cas if m.seed in seeds])) / real, 3)


def _with_images(cell: str, members: list[EntryResult]) -> str:
    return f"{cell} ({members[0].summary.get('train_images', '?')} images)" if members else cell


def generator_markdown(
    scores: dict[str, GeneratorReading],
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
        dims = f"{result.fid_dims}-d"
        features = f"Inception {dims}" if not result.suffix else f"{result.features} {dims} (not FID)"
        fid = number_cell(result.fid, 3) + ("" if result.fid_full_rank else " (rank-deficient)")
        members, matched = of_run(cas, generator), of_run(equal, generator)
        body.append(
            [
                generator,
                features,
                str(result.fid_images),
                fid,
                f"{number_cell(result.kid_mean)} ± {number_cell(result.kid_std)}",
                number_cell(result.precision, 3),
                number_cell(result.recall, 3),
                number_cell(result.diversity_ratio, 3),
                number_cell(result.near_duplicate_fraction, 3),
                _with_images(_accuracy_over_seeds(members), members),
                _with_images(_accuracy_over_seeds(matched), matched),
                cas_ratio(members, matched),
                _with_images(_accuracy_over_seeds(real), real),
                number_cell(result.real_classifier_accuracy_on_generated),
                str(trainings.get(generator_of(generator), {}).get("steps", "pretrained")),
            ]
        )
    return markdown_table(header, body)


def variant_label(variant: str, flagged: AbstractSet[str], conditional: AbstractSet[str] = frozenset()) -> str:
    label = f"{variant} (unusable images)" if variant in flagged else variant
    return f"{label} (conditional on one generator run)" if variant in conditional else label


def recognition_cell(entry: ClassReading) -> str:
    """own share − others' share = margin [interval], as the judge labels one class's generated images."""
    return (
        f"{entry.recognition:.2f} − {entry.false_recognition:.2f} = {entry.recognition_margin:+.2f} "
        f"[{entry.recognition_margin_low:+.2f}, {entry.recognition_margin_high:+.2f}]"
    )


def recognition_margin_cell(entry: ClassReading) -> str:
    low, high = entry.recognition_margin_low, entry.recognition_margin_high
    return f"{entry.recognition_margin:+.2f} [{low:+.2f}, {high:+.2f}]"


def per_class_generator_markdown(
    scores: dict[str, GeneratorReading], class_names: list[str], cas: dict[str, list[EntryResult]]
) -> str:
    """Per class, for one generator's runs (a cell lists them in the header's order): KID (unbiased at these
    sizes; no per-class FID), the images compared, diversity, CAS recall, and how the full-data classifier labels
    the class's generated images against the other classes' (the usability test)."""
    one_generator = len({generator_of(label) for label in scores}) == 1
    runs = [run_of(label) if one_generator else label for label in scores]
    each = f" ({' / '.join(runs)})" if len(runs) > 1 else ""
    judge = "judge: own − others [95 % CI]" if len(runs) == 1 else "judge: own − others margin [95 % CI]"
    metrics = ("KID", "images", "diversity", "CAS recall", judge, "usable")
    body = []
    for name in class_names:
        cells: list[list[str]] = [[] for _ in metrics]
        for label, result in scores.items():
            entry = result.per_class[name]
            members = of_run(cas, label)
            recall = float(np.mean([m.metrics["per_class"][name]["recall"] for m in members])) if members else None
            values = [
                number_cell(entry.kid_mean),
                str(entry.images),
                number_cell(entry.diversity_ratio, 2) + (" (collapsed)" if entry.collapsed else ""),
                number_cell(recall),
                recognition_cell(entry) if len(runs) == 1 else recognition_margin_cell(entry),
                "yes" if entry.usable else ("no: collapsed" if entry.collapsed else "no"),
            ]
            for column, value in zip(cells, values):
                column.append(value)
        body.append([name, *(" / ".join(dict.fromkeys(c)) if i == 1 else " / ".join(c) for i, c in enumerate(cells))])
    return markdown_table(["class", *(f"{metric}{each}" for metric in metrics)], body)


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
