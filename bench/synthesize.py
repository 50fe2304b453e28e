"""Throughput of the synthesize backend (SdxlTurboGenerator) on this machine, by batch size.

Builds the tiny random SDXL + ControlNet pipeline, loads it through the stage's own loader, and
times generation of the same planned items at each batch size (one warm-up batch first).
Prints a table and writes metrics/bench/synthesize.json.

    python bench/synthesize.py [--images 32] [--resolution 64] [--batch-sizes 1 4 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from record import machine_info, save_bench
from synthaug.core.generator_params import SynthesizeParams
from synthaug.core.param_rules import parse_section
from synthaug.generators.sdxl_turbo import SdxlTurboGenerator
from synthaug.synthetic.plan import plan_items
from synthaug.tools.compose import compose_params
from synthaug.tools.tiny import build_tiny_sdxl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64) % 2
    items = plan_items(np.arange(64), labels, ("a", "b"), np.array([args.images, 0]), ["a photo of a {name}"], seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model, controlnet = build_tiny_sdxl(Path(scratch) / "tiny")
        for controlnet_path in (str(controlnet), None):
            raw = compose_params("conf", ["sdxl=tiny"])["synthesize"]
            raw["sdxl_turbo"].update(
                model=str(model), controlnet=controlnet_path, resolution=args.resolution, image_size=None
            )
            for batch_size in args.batch_sizes:
                raw["sdxl_turbo"]["batch_size"] = batch_size
                params = parse_section("synthesize", raw, SynthesizeParams).sdxl_turbo
                generator = SdxlTurboGenerator(params, real, 32, torch.device("cpu"))
                generator(items[:batch_size])  # warm-up
                start = time.perf_counter()
                generator(items)
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "pipeline": "tiny-sdxl+controlnet" if controlnet_path else "tiny-sdxl",
                        "resolution": args.resolution,
                        "batch_size": batch_size,
                        "images": len(items),
                        "seconds": round(seconds, 3),
                        "images_per_second": round(len(items) / seconds, 2),
                    }
                )
                print(
                    f"{rows[-1]['pipeline']:22s} {args.resolution}px batch {batch_size}: "
                    f"{rows[-1]['images_per_second']:7.2f} images/s ({len(items)} in {seconds:.1f}s)"
                )
    save_bench(
        "synthesize",
        {
            "machine": machine_info(),
            "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__},
            "command": "python bench/synthesize.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
