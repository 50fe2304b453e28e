"""Calibration of a classifier's top-label confidence: expected calibration error and its reliability bins."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width confidence bins, as Guo et al. (2017) report ECE


def top_label(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class: the logits' argmax, its softmax probability) per row of logits."""
    predicted = np.asarray(logits).argmax(axis=1)
    wide = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(wide - wide.max(axis=1, keepdims=True))
    return predicted, shifted[np.arange(len(predicted)), predicted] / shifted.sum(axis=1)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> tuple[float, dict[str, list]]:
    """Expected calibration error (the bins' sample-weighted |accuracy - mean confidence|) and, per equal-width bin
    (lower, upper], its sample count, accuracy and mean confidence (0 where empty).

    `confidence`: each sample's highest predicted probability; `correct`: whether that class was the label."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    filled = count > 0
    accuracy = np.divide(np.bincount(index, correct, bins), count, out=np.zeros(bins), where=filled)
    mean_confidence = np.divide(np.bincount(index, confidence, bins), count, out=np.zeros(bins), where=filled)
    ece = float((count * np.abs(accuracy - mean_confidence)).sum() / max(count.sum(), 1.0))
    reliability = {
        "upper": [round((b + 1) / bins, 6) for b in range(bins)],
        "count": count.astype(int).tolist(),
        "accuracy": accuracy.round(6).tolist(),
        "confidence": mean_confidence.round(6).tolist(),
    }
    return ece, reliability


def pooled_reliability(runs: list[dict[str, list]]) -> tuple[np.ndarray, np.ndarray]:
    """(mean confidence, accuracy) of each non-empty bin over several runs' reliability bins, as one sample."""
    count = np.sum([run["count"] for run in runs], axis=0).astype(np.float64)
    hits = np.sum([np.multiply(run["count"], run["accuracy"]) for run in runs], axis=0)
    confidence = np.sum([np.multiply(run["count"], run["confidence"]) for run in runs], axis=0)
    filled = count > 0
    return confidence[filled] / count[filled], hits[filled] / count[filled]
