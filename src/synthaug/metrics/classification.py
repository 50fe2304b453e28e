"""Accuracy, macro- and weighted F1, per-class precision/recall/F1 and confusion matrices, from label arrays."""

from __future__ import annotations

import numpy as np


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j] = number of samples of class i predicted as j."""
    return np.bincount(actual * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def normalize_rows(confusion: np.ndarray) -> np.ndarray:
    """Row-normalized confusion (recall on the diagonal); empty rows stay zero."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=np.float64), where=totals > 0)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (as scikit-learn's zero_division=0)."""
    true_positive = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(actual: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    return float(per_class_scores(confusion_matrix(actual, predicted, num_classes))["f1"].mean())


def weighted_f1(scores: dict[str, np.ndarray]) -> float:
    """Per-class F1 averaged with each class's share of the samples (scikit-learn's average="weighted")."""
    support = scores["support"]
    return float((scores["f1"] * support).sum() / support.sum()) if support.sum() else 0.0


def classification_report(actual: np.ndarray, predicted: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """The metrics file of one classifier: overall scores plus a per-class block."""
    confusion = confusion_matrix(actual, predicted, len(class_names))
    scores = per_class_scores(confusion)
    return {
        "accuracy": round(float(np.trace(confusion) / max(confusion.sum(), 1)), 6),
        "macro_f1": round(float(scores["f1"].mean()), 6),
        "weighted_f1": round(weighted_f1(scores), 6),
        "num_samples": int(confusion.sum()),
        "per_class": {
            name: {
                "precision": round(float(scores["precision"][i]), 6),
                "recall": round(float(scores["recall"][i]), 6),
                "f1": round(float(scores["f1"][i]), 6),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(class_names)
        },
    }


def group_scores(per_class: dict[str, dict[str, float]], groups: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per group of classes, the mean of its classes' F1 (macro-F1 over the group) and recall."""
    return {
        group: {
            "macro_f1": round(float(np.mean([per_class[name]["f1"] for name in names])), 6),
            "recall": round(float(np.mean([per_class[name]["recall"] for name in names])), 6),
        }
        for group, names in groups.items()
    }
