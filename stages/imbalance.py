"""DVC stage `imbalance`: seeded per-class keep fractions + a balanced validation split, as indices."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from synthaug.core.io import write_json, write_text
from synthaug.core.params import ImbalanceParams, load_section
from synthaug.core.runner import run_stage
from synthaug.core.tracking import run_name, stage_run
from synthaug.data.imbalance import keep_fractions, make_splits
from synthaug.data.storage import load_image_set, save_index_arrays


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="split indices (.npz: train, val, full)")
    parser.add_argument("--counts", type=Path, required=True, help="class counts (.json) and their plot (.csv)")
    args = parser.parse_args()
    params = load_section("imbalance", ImbalanceParams)

    with stage_run(run_name("imbalance"), {"imbalance": params.model_dump()}) as tracker:
        train = load_image_set(args.data / "train.npz")
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
        save_index_arrays(args.out, splits.as_arrays())
        counts = {
            split: dict(zip(train.class_names, np.bincount(train.labels[idx], minlength=train.num_classes).tolist()))
            for split, idx in splits.as_arrays().items()
        }
        train_counts = np.array(list(counts["train"].values()))
        summary = {
            "counts": counts,
            "keep_fractions": dict(zip(train.class_names, np.round(fractions, 6).tolist())),
            "train_total": int(train_counts.sum()),
            "imbalance_ratio": round(float(train_counts.max() / train_counts.min()), 4),
        }
        write_json(args.counts.with_suffix(".json"), summary)
        rows = ["class,train,val,full"] + [
            f"{name},{counts['train'][name]},{counts['val'][name]},{counts['full'][name]}" for name in train.class_names
        ]
        write_text(args.counts.with_suffix(".csv"), "\n".join(rows) + "\n")
        tracker.log_metrics({"train_total": summary["train_total"], "imbalance_ratio": summary["imbalance_ratio"]})
        tracker.log_artifact(args.counts.with_suffix(".json"))
    ratio = summary["imbalance_ratio"]
    return f"train {summary['train_total']} images, imbalance ratio {ratio}: {json.dumps(counts['train'])}"


if __name__ == "__main__":
    run_stage("imbalance", main, exit_process=True)
