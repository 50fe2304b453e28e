"""Keep only synthetic images that a classifier trained on real data agrees with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthaug.core.errors import MissingInput
from synthaug.core.params import SyntheticFilterParams
from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet
from synthaug.models.checkpoint import load_classifier
from synthaug.models.inference import predict_logits


def agreement_mask(
    model: torch.nn.Module, input_format: InputFormat, synthetic: ImageSet, min_confidence: float, batch_size: int
) -> np.ndarray:
    """True where the classifier predicts the intended class with probability >= min_confidence."""
    if len(synthetic) == 0:
        return np.zeros(0, dtype=bool)
    logits = torch.from_numpy(predict_logits(model, synthetic.images, input_format, batch_size, "filter"))
    probabilities = logits.softmax(dim=1).numpy()
    intended = probabilities[np.arange(len(synthetic)), synthetic.labels]
    return (probabilities.argmax(1) == synthetic.labels) & (intended >= min_confidence)


def kept_fraction_per_class(labels: np.ndarray, keep: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """Per class with synthetic images: the fraction the filter kept."""
    fractions = {}
    for cls, name in enumerate(class_names):
        members = labels == cls
        if members.any():
            fractions[name] = round(float(keep[members].mean()), 6)
    return fractions


def filter_synthetic(
    synthetic: ImageSet, judge_dir: Path | None, params: SyntheticFilterParams, batch_size: int
) -> tuple[ImageSet, dict]:
    """Apply train.synthetic_filter with the checkpoint in judge_dir; return the kept set and a report."""
    report: dict = {}
    if params.enabled:
        if judge_dir is None:
            raise MissingInput(
                "train.synthetic_filter.enabled needs a real-data classifier checkpoint (--filter-model)"
            )
        if not judge_dir.is_dir():
            raise MissingInput(
                f"{judge_dir}: the judge of train.synthetic_filter (judge: {params.judge}) is missing; "
                "the judge must be one of experiment.variants"
            )
        judge, spec = load_classifier(judge_dir)
        report["synthetic_filter_judge"] = params.judge
        keep = agreement_mask(judge, spec.input_format, synthetic, params.min_confidence, batch_size)
        report["synthetic_kept_fraction"] = kept_fraction_per_class(synthetic.labels, keep, synthetic.class_names)
        synthetic = synthetic.subset(np.flatnonzero(keep))
    report["synthetic_images"] = len(synthetic)
    return synthetic, report
