"""Where the installed OpenCV's uint8 HSV conversions differ from the torch augmentation engine, on this CPU.

Converts every one of the 2^24 RGB colours (COLOR_RGB2HSV) and every uint8 HSV triple with H < 180
(COLOR_HSV2RGB) with cv2 and with synthaug.data.batch_augment, and counts, per channel, the pixels that differ
and by how much. It also prints a digest of OpenCV's outputs: two OpenCV versions, or two CPUs, with the same
digest convert every colour alike. The CPU matters because OpenCV picks a vectorised kernel per CPU (its
"dispatched" list). Prints a table and writes metrics/bench/opencv_hsv.json.

    python bench/opencv_hsv.py
    PYTHONPATH=/tmp/cv-5.1 python bench/opencv_hsv.py --out metrics/bench/opencv_hsv-5.1.json   # another OpenCV
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch

from record import machine_info, save_bench
from synthaug.data.batch_augment import hsv_uint8_to_rgb, rgb_to_hsv_uint8


def every_rgb_colour() -> np.ndarray:
    codes = np.arange(1 << 24, dtype=np.uint32)
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)


def every_hsv_triple() -> np.ndarray:
    hue, saturation, value = np.meshgrid(np.arange(180), np.arange(256), np.arange(256), indexing="ij")
    return np.stack([hue, saturation, value], -1).astype(np.uint8).reshape(180 * 256, 256, 3)


def torch_engine(conversion, image: np.ndarray, rows: int = 512) -> np.ndarray:
    """The engine's conversion of one large HWC uint8 image, a band of rows at a time."""
    bands = []
    for start in range(0, len(image), rows):
        band = torch.from_numpy(image[start : start + rows]).permute(2, 0, 1)[None].float()
        bands.append(conversion(band)[0].permute(1, 2, 0).numpy().astype(np.uint8))
    return np.concatenate(bands)


def compare(opencv: np.ndarray, ours: np.ndarray, channels: str, hue_channel: bool) -> dict:
    difference = opencv.astype(np.int64) - ours.astype(np.int64)
    if hue_channel:  # hue is an angle: 179 and 0 are one step apart
        difference[..., 0] = (difference[..., 0] + 90) % 180 - 90
    differs = (difference != 0).any(-1)
    return {
        "pixels": int(differs.size),
        "differing_fraction": float(differs.mean()),
        "opencv_sha256": hashlib.sha256(opencv.tobytes()).hexdigest(),
        **{f"{name}_differing": int((difference[..., c] != 0).sum()) for c, name in enumerate(channels.split(","))},
        **{f"{name}_max_step": int(np.abs(difference[..., c]).max()) for c, name in enumerate(channels.split(","))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default metrics/bench/opencv_hsv.json")
    args = parser.parse_args()
    colours, triples = every_rgb_colour(), every_hsv_triple()
    rgb_to_hsv = compare(
        cv2.cvtColor(colours, cv2.COLOR_RGB2HSV), torch_engine(rgb_to_hsv_uint8, colours), "h,s,v", True
    )
    hsv_to_rgb = compare(
        cv2.cvtColor(triples, cv2.COLOR_HSV2RGB), torch_engine(hsv_uint8_to_rgb, triples), "r,g,b", False
    )
    build = cv2.getBuildInformation()
    dispatched = next((line.split(":", 1)[1].split() for line in build.splitlines() if "Dispatched" in line), [])
    payload = {
        "machine": machine_info(),
        "opencv": cv2.__version__,
        "opencv_dispatched": dispatched,
        # OpenCV's own reading: baseline features, then '*' for a dispatched one this CPU has, '?' for one it lacks
        "opencv_cpu_features": cv2.getCPUFeaturesLine(),
        "ipp": bool(cv2.ipp.useIPP()),
        "rgb_to_hsv": rgb_to_hsv,
        "hsv_to_rgb": hsv_to_rgb,
    }
    print(f"OpenCV {cv2.__version__}, its CPU features here: {payload['opencv_cpu_features']}")
    print("| conversion | pixels | differing | per channel (pixels, max step) | OpenCV output sha256 |")
    print("|---|---|---|---|---|")
    for name, row, channels in (("RGB2HSV", rgb_to_hsv, "hsv"), ("HSV2RGB", hsv_to_rgb, "rgb")):
        per_channel = ", ".join(f"{c} {row[f'{c}_differing']} ({row[f'{c}_max_step']})" for c in channels)
        print(
            f"| {name} | {row['pixels']:,} | {row['differing_fraction']:.4%} | {per_channel} | "
            f"{row['opencv_sha256'][:16]} |"
        )
    save_bench("opencv_hsv", payload, args.out)


if __name__ == "__main__":
    main()
