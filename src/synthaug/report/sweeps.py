"""The report's sweep sections: a sweep's table and its heatmap, the value chosen on validation boxed."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

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
