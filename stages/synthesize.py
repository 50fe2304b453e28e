"""DVC stage `synthesize`: one generator's synthetic images for the minority classes, as resumable shards."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from synthaug.cli import run_stage
from synthaug.data.storage import load_image_set, load_index_arrays
from synthaug.io import atomic_path, fingerprint, read_json, work_folder, write_json
from synthaug.metrics.plots import save_png
from synthaug.params import SynthesizeParams, load_section
from synthaug.synth.plan import generation_counts, plan_items
from synthaug.synth.sdxl_turbo import LazyGenerator
from synthaug.synth.shards import METADATA_FILE, generate_shards, load_synthetic, metadata_csv, preview_grids
from synthaug.tracking import run_name, stage_run


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generator", required=True, choices=["sdxl_turbo"], help="experiment.generators entry")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument("--out", type=Path, required=True, help="output folder (shards, metadata.csv)")
    parser.add_argument("--previews", type=Path, required=True, help="preview grids folder; counts go to <previews>.json")
    args = parser.parse_args()
    params = load_section("synthesize", SynthesizeParams)
    backend_params = getattr(params, args.generator)

    train = load_image_set(args.data / "train.npz")
    train_idx = load_index_arrays(args.splits)["train"]
    real_counts = np.bincount(train.labels[train_idx], minlength=train.num_classes)
    counts = generation_counts(real_counts, params.target_count, params.target_ratio)
    items = plan_items(train_idx, train.labels, train.class_names, counts, backend_params.prompt_templates, params.seed)
    # Everything that decides the images: a half-done work folder from other inputs is discarded, not resumed.
    digest = fingerprint({
        "params": params.model_dump(), "generator": args.generator,
        "data": read_json(args.data / "meta.json")["sha256"], "items": [item.to_dict() for item in items],
    })
    workdir = work_folder(args.out)

    name = run_name("synthesize", args.generator)
    with stage_run(name, {"synthesize": params.model_dump()}, {"generator": args.generator}) as tracker:
        generate = LazyGenerator(backend_params, train.images, train.images.shape[1])
        start = time.perf_counter()
        generated = generate_shards(items, params.shard_size, workdir, digest, generate)
        seconds = time.perf_counter() - start

        with atomic_path(args.out, directory=True) as tmp:
            for shard in sorted(workdir.glob("shard-*.npz")):
                os.replace(shard, tmp / shard.name)
            (tmp / METADATA_FILE).write_text(metadata_csv(items, params.shard_size, args.generator), encoding="utf-8")
        shutil.rmtree(workdir)

        synthetic_counts = dict(zip(train.class_names, counts.tolist()))
        write_json(args.previews.with_suffix(".json"), {
            "generator": args.generator,
            "synthetic_per_class": synthetic_counts,
            "real_per_class": dict(zip(train.class_names, real_counts.tolist())),
            "synthetic_total": int(counts.sum()),
        })
        grids = preview_grids(train.subset(train_idx), load_synthetic(args.out, train.class_names), params.preview_per_class)
        with atomic_path(args.previews, directory=True) as folder:
            for class_name, grid in grids.items():
                save_png(grid, folder / f"{class_name}.png")
        tracker.log_metrics({"synthetic_total": int(counts.sum()), "generated_this_run": generated,
                             "generation_seconds": seconds, "images_per_second": generated / seconds if generated else 0.0})
        tracker.log_metrics({f"synthetic.{k}": v for k, v in synthetic_counts.items()})
        for preview in sorted(args.previews.glob("*.png")):
            tracker.log_artifact(preview)
    rate = f"{generated / seconds:.2f} images/s" if generated else "all shards were already complete"
    return f"{name}: {int(counts.sum())} synthetic images ({generated} generated now, {rate})"


if __name__ == "__main__":
    run_stage("synthesize", main)
