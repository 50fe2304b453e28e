"""DVC stage `synthesize`: one generator's synthetic images for the minority classes, as resumable shards."""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np

from synthaug.cli import run_stage
from synthaug.data.storage import load_image_set, load_index_arrays
from synthaug.io import atomic_path, fingerprint, read_json, work_folder, write_json
from synthaug.metrics.plots import image_grid, save_png
from synthaug.params import SynthesizeParams, load_section
from synthaug.synth.plan import generation_counts, plan_items
from synthaug.synth.sdxl_turbo import SdxlTurboGenerator, resolve_device
from synthaug.synth.shards import METADATA_FIELDS, METADATA_FILE, generate_shards, metadata_rows
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
        backend = None

        def generate(shard_items):  # noqa: ANN001, ANN202 - the pipeline loads only if a shard is missing
            nonlocal backend
            if backend is None:
                device = resolve_device(backend_params.device)
                backend = SdxlTurboGenerator(backend_params, train.images, train.images.shape[1], device)
            return backend(shard_items)

        start = time.perf_counter()
        generated = generate_shards(items, params.shard_size, workdir, digest, generate)
        seconds = time.perf_counter() - start

        with atomic_path(args.out, directory=True) as tmp:
            for shard in sorted(workdir.glob("shard-*.npz")):
                os.replace(shard, tmp / shard.name)
            table = io.StringIO()
            writer = csv.DictWriter(table, fieldnames=METADATA_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(metadata_rows(items, params.shard_size, args.generator))
            (tmp / METADATA_FILE).write_text(table.getvalue(), encoding="utf-8")
        shutil.rmtree(workdir)

        synthetic_counts = dict(zip(train.class_names, counts.tolist()))
        write_json(args.previews.with_suffix(".json"), {
            "generator": args.generator,
            "synthetic_per_class": synthetic_counts,
            "real_per_class": dict(zip(train.class_names, real_counts.tolist())),
            "synthetic_total": int(counts.sum()),
        })
        write_previews(args.out, args.previews, train, train_idx, items, params.preview_per_class)
        tracker.log_metrics({"synthetic_total": int(counts.sum()), "generated_this_run": generated,
                             "generation_seconds": seconds, "images_per_second": generated / seconds if generated else 0.0})
        tracker.log_metrics({f"synthetic.{k}": v for k, v in synthetic_counts.items()})
        for preview in sorted(args.previews.glob("*.png")):
            tracker.log_artifact(preview)
    rate = f"{generated / seconds:.2f} images/s" if generated else "all shards were already complete"
    return f"{name}: {int(counts.sum())} synthetic images ({generated} generated now, {rate})"


def write_previews(out: Path, previews: Path, train, train_idx, items, per_class: int) -> None:  # noqa: ANN001
    """Per class: a row of real training images above rows of its synthetic images."""
    from synthaug.synth.shards import load_synthetic

    synthetic = load_synthetic(out, train.class_names)
    with atomic_path(previews, directory=True) as tmp:
        for cls, class_name in enumerate(train.class_names):
            fake = synthetic.images[synthetic.labels == cls][: 2 * per_class]
            if len(fake) == 0:
                continue
            real = train.images[train_idx[train.labels[train_idx] == cls][:per_class]]
            rows = [real] + [fake[i : i + per_class] for i in range(0, len(fake), per_class)]
            save_png(image_grid(rows), tmp / f"{class_name}.png")


if __name__ == "__main__":
    run_stage("synthesize", main)
