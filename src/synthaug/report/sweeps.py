"""The report's sweep sections: a sweep's table and its heatmap, the value chosen on validation boxed, and for
variants that add generated images, their score and cost against how many they added."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from synthaug.core.variants import REAL_EQUAL_PREFIX, SYNTHETIC_ONLY_PREFIX
from synthaug.report.tables import markdown_table, number_cell


def swept_value(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sweep_cell(row: dict | None) -> str:
    """val mean / test mean, with the stds and the seeds when the point ran more than one."""
    if row is None:
        return "n/a"
    if row["seeds"] > 1:
        return (
            f"{number_cell(row['val_mean'])} ± {number_cell(row['val_std'])} / {number_cell(row['mean'])} ± "
            f"{number_cell(row['std'])} ({row['seeds']} seeds)"
        )
    return f"{number_cell(row['val_mean'])} / {number_cell(row['mean'])}"


def sweep_markdown(rows: list[dict]) -> str:
    """A collected sweep (synthaug.report.sweep_runs): one line per classifier/variant, one column per value; each
    cell validation / test macro-F1, and the value chosen on validation."""
    from synthaug.report.sweep_runs import chosen_values

    labels = list(dict.fromkeys(f"{r['classifier']}/{r['variant']}" for r in rows))
    values = list(dict.fromkeys(r["value"] for r in rows))
    cells = {(f"{r['classifier']}/{r['variant']}", r["value"]): r for r in rows}
    chosen = chosen_values(rows)
    header = (
        [f"{rows[0]['param']} → (val macro-F1 / test {rows[0]['metric']})"]
        + [swept_value(v) for v in values]
        + ["chosen on validation"]
    )
    body = [
        [label, *(_sweep_cell(cells.get((label, v))) for v in values)]
        + [swept_value(chosen[label]) if label in chosen else "no validation scores"]
        for label in labels
    ]
    return markdown_table(header, body)


def sweep_heatmap_figure(rows: list[dict]) -> Figure:
    """Coloured by mean validation macro-F1 per (classifier/variant, swept value), each cell also giving the
    test mean; the value chosen on validation is boxed; blank cells were not run."""
    from synthaug.report.sweep_runs import chosen_values, sweep_matrix

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
    axes.set_xticks(np.arange(len(values)), [swept_value(v) for v in values])
    axes.set_yticks(np.arange(len(labels)), labels)
    axes.set_xlabel(rows[0]["param"])
    axes.set_title(f"Validation macro-F1 (colour; boxed: chosen) and test {rows[0]['metric']} by {rows[0]['param']}")
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    return figure


def adds_images(rows: list[dict]) -> bool:
    """Whether a sweep has variants that add generated images, so its amount can be drawn."""
    return any(math.isfinite(row.get("generated_per_class", math.nan)) for row in rows)


def _interval_cell(row: dict) -> str:
    interval = f" [{row['low']:.4f}, {row['high']:.4f}]" if math.isfinite(row["low"]) else ""
    return f"{row['mean']:.4f}{interval}"


def amount_markdown(rows: list[dict]) -> str:
    """Per variant that adds generated images, per swept value: the images it added per class, the test metric
    with its 95 % t interval over seeds, and the seconds a seed cost (classifier + one generator run)."""
    added = [r for r in rows if math.isfinite(r["generated_per_class"])]
    labels = list(dict.fromkeys(f"{r['classifier']}/{r['variant']}" for r in added))
    values = list(dict.fromkeys(r["value"] for r in added))
    cells = {(f"{r['classifier']}/{r['variant']}", r["value"]): r for r in added}
    header = [f"{rows[0]['param']} → generated per class: test {rows[0]['metric']} [95 % interval], seconds per seed"]
    body = []
    for label in labels:
        line = [label]
        for value in values:
            row = cells.get((label, value))
            line.append(
                "n/a"
                if row is None
                else f"{row['generated_per_class']:g}: {_interval_cell(row)}, {row['compute_seconds']:.0f} s"
            )
        body.append(line)
    return markdown_table(header + [swept_value(v) for v in values], body)


def amount_figure(rows: list[dict]) -> Figure:
    """Test metric against generated images per class, one line per variant that adds them, with 95 % intervals
    and each point's seconds per seed; the real-data variants are horizontal lines with their interval (the CAS
    variants, trained on generated or as many real images alone, are left out)."""
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    labels = list(dict.fromkeys(f"{r['classifier']}/{r['variant']}" for r in rows))
    colors = [f"C{k}" for k in range(10)]  # matplotlib's default cycle, one colour per variant
    for index, label in enumerate(labels):
        mine = [r for r in rows if f"{r['classifier']}/{r['variant']}" == label]
        color = colors[index % len(colors)]
        if mine[0]["variant"].startswith((SYNTHETIC_ONLY_PREFIX, REAL_EQUAL_PREFIX)):
            continue
        if not math.isfinite(mine[0]["generated_per_class"]):
            first = mine[0]
            axes.axhline(first["mean"], color=color, linestyle="--", linewidth=1, label=label)
            if math.isfinite(first["low"]):
                axes.axhspan(first["low"], first["high"], color=color, alpha=0.1)
            continue
        mine.sort(key=lambda r: r["generated_per_class"])
        x = [r["generated_per_class"] for r in mine]
        y = [r["mean"] for r in mine]
        errors = [[r["mean"] - r["low"] for r in mine], [r["high"] - r["mean"] for r in mine]]
        axes.errorbar(x, y, yerr=np.nan_to_num(errors), color=color, marker="o", capsize=3, label=label)
        for r in mine:
            if math.isfinite(r["compute_seconds"]):
                axes.annotate(
                    f"{r['compute_seconds']:.0f} s",
                    (r["generated_per_class"], r["mean"]),
                    fontsize=7,
                    color=color,
                    xytext=(5, 3 + 9 * (index % 3)),
                    textcoords="offset points",
                )
    axes.set_xlabel(f"generated images added per class (mean over classes; {rows[0]['param']})")
    axes.set_ylabel(f"test {rows[0]['metric']}")
    axes.set_title(f"Test {rows[0]['metric']} (95 % interval; seconds per seed at each point)", fontsize=10)
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure
