"""Figures made once and reused by DVC plots, MLflow artifacts and the report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from synthaug.io import atomic_path  # noqa: E402


def confusion_figure(normalized: np.ndarray, class_names: tuple[str, ...], title: str) -> Figure:
    """Row-normalized confusion matrix as a heatmap with the recall of each cell written in."""
    size = 1.2 + 0.55 * len(class_names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalized, vmin=0.0, vmax=1.0, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(title)
    for i in ticks:
        for j in ticks:
            value = normalized[i, j]
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(figure)
