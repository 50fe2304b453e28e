"""The report's figures."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from synthaug.core.plots import draw_confusion
from synthaug.metrics.calibration import ECE_BINS, pooled_reliability
from synthaug.report.records import EntryResult

matplotlib.use("Agg")


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


def reliability_figure(results: list[EntryResult]) -> Figure:
    """Test accuracy against mean confidence per confidence bin, the seeds' bins pooled, one line per entry."""
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="calibrated")
    by_entry: dict[str, list[EntryResult]] = {}
    for result in results:
        if "reliability" in result.metrics:
            by_entry.setdefault(f"{result.classifier}-{result.variant}", []).append(result)
    for label, members in by_entry.items():
        confidence, accuracy = pooled_reliability([m.metrics["reliability"] for m in members])
        axes.plot(confidence, accuracy, marker="o", markersize=3, label=label)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence in the bin", ylabel="test accuracy in the bin")
    axes.set_title(f"Reliability (top label, {ECE_BINS} equal-width bins, seeds pooled)", fontsize=9)
    axes.legend(fontsize=6)
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
