"""How much edge a ControlNet gets from a CIFAR-10 source: canny edge density on real images upscaled to 512 px.

SDXL-Turbo's ControlNet is conditioned on canny edges of a real image of the class. The sources are 32 px, so the
edge map is taken of the image upscaled to the generation size (`synth.sdxl_turbo.canny_edges`, what the synthesize
stage runs), where bicubic upscaling spreads every intensity step over 16 pixels and weakens its gradient. Per
threshold pair this reads the fraction of edge pixels per image (mean, median) and the share of sources whose map is
nearly empty (under 0.5 % edge pixels: the ControlNet then has almost nothing to follow). For scale, the same
density at the source's own 32 px. Prints a table and writes metrics/bench/canny_edges.json.

    python bench/canny_edges.py --data data/cifar10/train.npz --per-class 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from record import machine_info, save_bench
from synthaug.data.storage import load_image_set
from synthaug.generators.sdxl_turbo import canny_edges

NEARLY_EMPTY = 0.005  # edge-pixel fraction under which a map guides almost nothing
THRESHOLDS = ((100, 200), (50, 100), (30, 60), (20, 40), (15, 30), (10, 20), (5, 10))


def sample_sources(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` images of each class, drawn without replacement."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    return images[np.concatenate(picks)]


def edge_densities(sources: np.ndarray, resolution: int, low: int, high: int) -> np.ndarray:
    """Per source image, the fraction of pixels of its canny map (at `resolution`) that are edges."""
    maps = canny_edges(sources, resolution, low, high)
    return np.array([(np.asarray(edge_map)[..., 0] > 0).mean() for edge_map in maps])


def native_densities(sources: np.ndarray, low: int, high: int) -> np.ndarray:
    gray = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in sources]
    return np.array([(cv2.Canny(image, low, high) > 0).mean() for image in gray])


def summarize(densities: np.ndarray) -> dict[str, float]:
    return {
        "mean_density": round(float(densities.mean()), 5),
        "median_density": round(float(np.median(densities)), 5),
        "nearly_empty_fraction": round(float((densities < NEARLY_EMPTY).mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/cifar10/train.npz"), help="fetched train split")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=512, help="synthesize.sdxl_turbo.resolution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_image_set(args.data)
    sources = sample_sources(data.images, data.labels, args.per_class, args.seed)
    rows = []
    for low, high in THRESHOLDS:
        row = {"low": low, "high": high, "resolution": args.resolution}
        row.update(summarize(edge_densities(sources, args.resolution, low, high)))
        row["native_32px"] = summarize(native_densities(sources, low, high))
        rows.append(row)

    print(f"{len(sources)} real train images ({args.per_class} per class), canny at {args.resolution} px")
    print(f"| low / high | mean density at {args.resolution} | median | nearly empty | mean density at 32 px |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['low']} / {row['high']} | {row['mean_density']:.4f} | {row['median_density']:.4f} | "
            f"{row['nearly_empty_fraction']:.1%} | {row['native_32px']['mean_density']:.4f} |"
        )
    save_bench(
        "canny_edges",
        {
            "machine": machine_info(),
            "data": str(args.data),
            "images": len(sources),
            "nearly_empty_below": NEARLY_EMPTY,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
