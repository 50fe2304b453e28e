"""The imbalance stage: seeded per-class keep fractions and a balanced validation split, written as indices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.core.io import write_json, write_text
from synthaug.core.params import ImbalanceParams
from synthaug.core.tracking import run_name, stage_run
from synthaug.data.imbalance import keep_fractions, make_splits
from synthaug.data.storage import load_image_set, save_index_arrays


def imbalance(params: ImbalanceParams, data: Path, out: Path, counts_file: Path) -> str:
    """Split indices into `out` (.npz: train, val, full), class counts into `counts_file` (.json and .csv)."""
    with stage_run(run_name("imbalance"), {"imbalance": params.model_dump()}) as tracker:
        train = load_image_set(data / "train.npz")
        fractions = keep_fractions(
            params.shape,
            train.num_classes,
            min_fraction=params.min_fraction,
            imbalance_factor=params.imbalance_factor,
            fractions=params.fractions,
        )
        splits = make_splits(
            train.labels,
            train.class_names,
            fractions,
            val_per_class=params.val_per_class,
            subset_per_class=params.subset_per_class,
            seed=params.seed,
            val_from=params.val_from,
        )
        save_index_arrays(out, splits.as_arrays())
        counts = {
            split: dict(zip(train.class_names, np.bincount(train.labels[idx], minlength=train.num_classes).tolist()))
            for split, idx in splits.as_arrays().items()
        }
        train_counts = np.array(list(counts["train"].values()))
        summary: dict[str, Any] = {
            "counts": counts,
            "keep_fractions": dict(zip(train.class_names, np.round(fractions, 6).tolist())),
            "train_total": int(train_counts.sum()),
            "imbalance_ratio": round(float(train_counts.max() / train_counts.min()), 4),
        }
        write_json(counts_file.with_suffix(".json"), summary)
        rows = ["class,train,val,full"] + [
            f"{name},{counts['train'][name]},{counts['val'][name]},{counts['full'][name]}" for name in train.class_names
        ]
        write_text(counts_file.with_suffix(".csv"), "\n".join(rows) + "\n")
        tracker.log_metrics({"train_total": summary["train_total"], "imbalance_ratio": summary["imbalance_ratio"]})
        tracker.log_artifact(counts_file.with_suffix(".json"))
    ratio = summary["imbalance_ratio"]
    return f"train {summary['train_total']} images, imbalance ratio {ratio}: {json.dumps(counts['train'])}"
