"""DVC stage `evaluate`: test-split metrics, predictions (DVC confusion plot) and confusion matrices."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from synthaug.cli import add_entry_arguments, entry_name, entry_tags, run_stage
from synthaug.data.storage import load_image_set
from synthaug.io import write_json, write_text
from synthaug.metrics.classification import (
    classification_report,
    confusion_matrix,
    normalize_rows,
)
from synthaug.metrics.plots import confusion_figure, save_figure
from synthaug.params import EvaluateParams, load_section
from synthaug.tracking import run_name, stage_run
from synthaug.train.checkpoint import load_classifier
from synthaug.train.classifier import predict_logits


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    add_entry_arguments(parser)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder from train_classifier")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder for metrics.json and friends")
    args = parser.parse_args()
    params = load_section("evaluate", EvaluateParams)

    test = load_image_set(args.data / "test.npz")
    model, spec = load_classifier(args.model)
    name = run_name("evaluate", entry_name(args), args.seed)
    with stage_run(name, {"evaluate": params.model_dump()}, entry_tags(args)) as tracker:
        predicted = predict_logits(model, test.images, spec.image_size, params.batch_size, "test").argmax(1)
        report = classification_report(test.labels, predicted, test.class_names)
        confusion = confusion_matrix(test.labels, predicted, test.num_classes)
        normalized = normalize_rows(confusion)
        write_json(args.out / "metrics.json", report)
        write_json(args.out / "confusion.json", {
            "class_names": list(test.class_names),
            "counts": confusion.tolist(),
            "normalized": np.round(normalized, 6).tolist(),
        })
        names = np.array(test.class_names)
        rows = ["actual,predicted"] + [f"{a},{p}" for a, p in zip(names[test.labels], names[predicted])]
        write_text(args.out / "predictions.csv", "\n".join(rows) + "\n")
        save_figure(confusion_figure(normalized, test.class_names, name), args.out / "confusion.png")
        tracker.log_metrics({"test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"]})
        tracker.log_metrics({f"test_recall.{c}": v["recall"] for c, v in report["per_class"].items()})
        for artifact in ("metrics.json", "confusion.json", "confusion.png"):
            tracker.log_artifact(args.out / artifact)
    return f"{name}: test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"


if __name__ == "__main__":
    run_stage("evaluate", main)
