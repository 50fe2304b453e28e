"""Figures made once and reused by DVC plots, MLflow artifacts and the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from synthaug.core.io import atomic_path


def draw_confusion(axes: Axes, normalized: np.ndarray, class_names: Sequence[str], title: str, small: bool) -> Any:
    """A row-normalized confusion matrix on `axes`: a heatmap with each cell's recall written in, or (small, for a row
    of matrices side by side) the heatmap alone in small type. Returns the heatmap (for a colorbar)."""
    fontsize = 6 if small else None
    image = axes.imshow(normalized, vmin=0.0, vmax=1.0, cmap="Blues")
    ticks = range(len(class_names))
    if small:
        axes.set_xticks(ticks, class_names, rotation=90, fontsize=fontsize)
    else:
        axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names, fontsize=fontsize)
    axes.set_xlabel("predicted", fontsize=7 if small else None)
    axes.set_title(title, fontsize=9 if small else None)
    if not small:
        axes.set_ylabel("actual")
        for i in ticks:
            for j in ticks:
                value = normalized[i, j]
                axes.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    return image


def confusion_figure(normalized: np.ndarray, class_names: tuple[str, ...], title: str) -> Figure:
    """One row-normalized confusion matrix with the recall of each cell written in, and a colorbar."""
    size = 1.2 + 0.55 * len(class_names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = draw_confusion(axes, normalized, class_names, title, small=False)
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(figure)


def image_grid(rows: list[np.ndarray], scale: int = 2, gap: int = 2) -> np.ndarray:
    """Tile rows of uint8 (N, H, W, 3) images (rows may differ in length) into one uint8 image."""
    height, width = rows[0].shape[1:3]
    columns = max(len(row) for row in rows)
    grid = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            grid[top : top + height, left : left + width] = image
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def save_png(pixels: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def loss_curves_figure(history: list[dict[str, float]], title: str) -> Figure:
    """Every logged series of a generator's training (loss, loss_d, loss_g, ...) against the step."""
    figure, axes = plt.subplots(figsize=(6.4, 3.6))
    steps = [row["step"] for row in history]
    for key in sorted({k for row in history for k in row} - {"step"}):
        axes.plot(steps, [row.get(key, np.nan) for row in history], label=key)
    axes.set_xlabel("step")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if history:
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
