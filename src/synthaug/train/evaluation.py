"""Test-split evaluation of a trained classifier: classification report, confusion matrices and predictions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from synthaug.core.io import write_json, write_text
from synthaug.core.plots import confusion_figure, save_figure
from synthaug.data.imbalance import CLASS_GROUPS
from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet
from synthaug.metrics.calibration import ECE_BINS, calibration, top_label
from synthaug.metrics.classification import (
    classification_report,
    confusion_matrix,
    group_scores,
    normalize_rows,
)
from synthaug.models.inference import predict_logits

# Each class group's macro-F1 and recall, as f1_<group> and recall_<group>.
GROUP_SCORES = tuple(f"{score}_{group}" for score in ("f1", "recall") for group in CLASS_GROUPS)
# What `dvc metrics show` prints per entry and seed; the rest of the report goes to its detail file.
HEADLINE_SCORES = ("accuracy", "macro_f1", "minority_recall", "ece", *GROUP_SCORES)


@dataclass(frozen=True)
class TestClasses:
    """How the test scores group the classes, by imbalanced training images: the minority half, and the many /
    medium / few groups (train.class_groups)."""

    minority: list[str]
    groups: dict[str, list[str]]


@dataclass(frozen=True)
class Evaluation:
    report: dict  # accuracy, macro-F1, per-class precision/recall/F1 (metrics/classification.py)
    confusion: np.ndarray  # counts, actual x predicted
    predicted: np.ndarray


def evaluate_classifier(
    model: nn.Module, input_format: InputFormat, test: ImageSet, batch_size: int, classes: TestClasses
) -> Evaluation:
    """The report adds minority_recall (the mean recall over the minority classes), each class group's macro-F1 and
    recall, and the top-label calibration: ece over ECE_BINS equal-width bins, and the bins (reliability)."""
    predicted, confidence = top_label(predict_logits(model, test.images, input_format, batch_size, "test"))
    report = classification_report(test.labels, predicted, test.class_names)
    report["minority_recall"] = float(np.mean([report["per_class"][name]["recall"] for name in classes.minority]))
    for group, scores in group_scores(report["per_class"], classes.groups).items():
        report[f"f1_{group}"], report[f"recall_{group}"] = scores["macro_f1"], scores["recall"]
    ece, reliability = calibration(confidence, predicted == test.labels, ECE_BINS)
    report["ece"] = round(ece, 6)
    report["reliability"] = reliability
    return Evaluation(report, confusion_matrix(test.labels, predicted, test.num_classes), predicted)


def write_evaluation(evaluation: Evaluation, test: ImageSet, title: str, predictions: Path, confusion: Path) -> None:
    """predictions: `actual,predicted` rows (.csv, DVC's confusion plot); confusion: the matrices as
    <confusion>.json and their figure as <confusion>.png. The report itself is the caller's to write."""
    normalized = normalize_rows(evaluation.confusion)
    write_json(
        confusion.with_suffix(".json"),
        {
            "class_names": list(test.class_names),
            "counts": evaluation.confusion.tolist(),
            "normalized": np.round(normalized, 6).tolist(),
        },
    )
    names = np.array(test.class_names)
    rows = ["actual,predicted"] + [f"{a},{p}" for a, p in zip(names[test.labels], names[evaluation.predicted])]
    write_text(predictions, "\n".join(rows) + "\n")
    save_figure(confusion_figure(normalized, test.class_names, title), confusion.with_suffix(".png"))
