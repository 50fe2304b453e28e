"""Training losses of the cheap, non-generative fixes for imbalance, beside plain cross-entropy.

- class-weighted cross-entropy: each class weighted by n / (K * n_c) (scikit-learn's "balanced");
- logit-adjusted cross-entropy (Menon et al., 2021): tau * log(prior) is added to the logits in the
  loss only, so predictions (raw logits) are pushed towards the rare classes;
- label smoothing at a variant-specific strength;
- knowledge distillation (Hinton et al., 2015): a trained teacher's softened predictions beside the labels.
Each trains on the same imbalanced set as the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthaug.core.params import TrainParams
from synthaug.core.variants import LOSS_VARIANTS, loss_variant_of
from synthaug.data.pixels import InputFormat, normalize_pixels

__all__ = [
    "LOSS_VARIANTS",
    "LossSpec",
    "Teacher",
    "balanced_class_weights",
    "classification_loss",
    "distillation_loss",
    "log_prior_offset",
    "loss_for_variant",
    "training_loss",
]


@dataclass(frozen=True)
class Teacher:
    """A trained classifier whose softened predictions the distilled variant learns from."""

    model: nn.Module  # frozen, in eval mode, on the student's device
    input_format: InputFormat  # the teacher's own, which may differ from the student's
    temperature: float
    alpha: float  # weight of the soft loss; 1 - alpha weighs the labels' loss


@dataclass(frozen=True)
class LossSpec:
    label_smoothing: float = 0.0
    class_weights: torch.Tensor | None = None  # (K,) per-class weights of the cross-entropy
    logit_offset: torch.Tensor | None = None  # (K,) added to the logits in the loss only
    teacher: Teacher | None = None  # the distilled variant's


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """n / (K * n_c); a class absent from `labels` gets weight 0 (it has no sample to weight)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.divide(len(labels), num_classes * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.from_numpy(weights).float()


def log_prior_offset(labels: np.ndarray, num_classes: int, tau: float) -> torch.Tensor:
    """tau * log(n_c / n); an absent class gets the offset of a class with one sample."""
    counts = np.maximum(np.bincount(labels, minlength=num_classes), 1).astype(np.float64)
    return torch.from_numpy(tau * np.log(counts / counts.sum())).float()


def loss_for_variant(variant: str, labels: np.ndarray, num_classes: int, params: TrainParams) -> LossSpec:
    """The loss a variant trains with (a composed one, its remedy's); every data variant uses plain cross-entropy
    with train.label_smoothing."""
    variant = loss_variant_of(variant)
    if variant == "class_weighted":
        return LossSpec(params.label_smoothing, class_weights=balanced_class_weights(labels, num_classes))
    if variant == "logit_adjusted":
        offset = log_prior_offset(labels, num_classes, params.loss_baselines.logit_adjustment_tau)
        return LossSpec(params.label_smoothing, logit_offset=offset)
    if variant == "label_smoothed":
        return LossSpec(params.loss_baselines.label_smoothing)
    return LossSpec(params.label_smoothing)


def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, spec: LossSpec, sample_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy with the spec's class weights, offset and smoothing; `sample_weights` scale each image's term
    inside the same mean (what weighted_<g> lowers for generated images)."""
    if spec.logit_offset is not None:
        logits = logits + spec.logit_offset.to(logits.device, logits.dtype)
    weight = spec.class_weights.to(logits.device, logits.dtype) if spec.class_weights is not None else None
    if sample_weights is None:
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=spec.label_smoothing)
    terms = F.cross_entropy(logits, targets, weight=weight, label_smoothing=spec.label_smoothing, reduction="none")
    denominator = weight[targets].sum() if weight is not None else torch.tensor(float(len(targets)))
    return (terms * sample_weights.to(terms.dtype)).sum() / denominator


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    hard_loss: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """(1 - alpha) * hard_loss + alpha * T^2 * KL(teacher || student), both softened by temperature T and the KL
    averaged over the batch (Hinton et al., 2015). T^2 keeps the soft gradients' scale as T changes; alpha 0 is
    the hard loss exactly."""
    student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits.to(student_logits.dtype) / temperature, dim=1)
    soft = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard_loss + alpha * temperature**2 * soft


def training_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    pixels: torch.Tensor,
    spec: LossSpec,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of one training batch; `pixels` (the augmented batch, 0..255) feed the teacher, if any, in its
    own input format, so it sees the very images the student sees."""
    loss = classification_loss(logits, targets, spec, sample_weights)
    if spec.teacher is None:
        return loss
    with torch.no_grad():
        teacher_logits = spec.teacher.model(normalize_pixels(pixels, spec.teacher.input_format))
    return distillation_loss(logits, teacher_logits, loss, spec.teacher.temperature, spec.teacher.alpha)
