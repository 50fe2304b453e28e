"""The classifier training loop: seeded shuffling, batch augmentation, AdamW, best-by-val-macro-F1."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from synthaug.core.devices import resolve_device, to_device
from synthaug.core.distributed import (
    Ranks,
    rank_share,
    share_weight,
    sum_over_ranks,
    wrap_for_ranks,
)
from synthaug.core.errors import NonFiniteLoss
from synthaug.core.io import rows_csv
from synthaug.core.params import TrainParams
from synthaug.core.resume import load_state, save_state
from synthaug.core.variants import careful_use_of
from synthaug.data.augment import Augmenter, make_augmentation
from synthaug.data.mixed import TrainingImages
from synthaug.data.pixels import InputFormat, normalize_pixels
from synthaug.data.storage import ImageSet
from synthaug.metrics.classification import confusion_matrix, per_class_scores
from synthaug.models.classifiers import (
    BUILDERS,
    ClassifierSpec,
    build_classifier,
    timm_input_format,
    trainable_parameters,
)
from synthaug.models.inference import model_device, predict_logits
from synthaug.train.losses import LossSpec, balanced_class_weights, loss_for_variant, training_loss

log = logging.getLogger("synthaug.train")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    val_macro_f1: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]  # the kept weights: the best validation epoch's, or the last's (train.select)
    best_epoch: int
    history: list[EpochRecord]
    stopped_early: bool = False  # train.early_stopping_patience ended it before train.epochs

    @property
    def best_val_macro_f1(self) -> float:
        return self.history[self.best_epoch - 1].val_macro_f1


@dataclass(frozen=True)
class CarefulUse:
    """How an entry uses the generated images it adds; the training set's first `real_images` are real."""

    real_images: int
    synthetic_weight: float = 1.0  # each generated image's loss weight
    real_epochs: int = 0  # the last epochs see the real images only, each as many steps as a full epoch
    real_loss: LossSpec | None = None  # the loss of those epochs

    def real_phase(self, epoch: int, epochs: int) -> bool:
        return epoch > epochs - self.real_epochs


@dataclass(frozen=True)
class TrainingSetup:
    """What one (classifier, variant) trains with: the model on its device, its spec, and the variant's loss."""

    model: nn.Module
    spec: ClassifierSpec
    loss_spec: LossSpec
    device: torch.device
    careful: CarefulUse | None = None  # weighted_<g> and finetuned_<g>


def prepare_training(
    classifier: str, variant: str, params: TrainParams, train_set: TrainingImages, loss_labels: np.ndarray | None = None
) -> TrainingSetup:
    """The one way the stage, HPO and the benchmarks build a classifier: on train.device, with the variant's loss,
    whose class statistics (class weights, the logit-adjustment prior) come from `loss_labels` (default: the
    training set's labels).

    Call after seeding: the initial weights come from torch's global generator.
    """
    spec = spec_from_params(classifier, params, train_set.num_classes)
    device = resolve_device(params.device, "train.device")
    model = build_classifier(spec).to(device)
    labels = train_set.labels if loss_labels is None else loss_labels
    loss = loss_for_variant(variant, labels, train_set.num_classes, params)
    return TrainingSetup(model, spec, loss, device, careful_use(variant, params, labels, train_set.num_classes))


def careful_use(variant: str, params: TrainParams, real_labels: np.ndarray, num_classes: int) -> CarefulUse | None:
    """What a careful variant does with its generated images (train.careful), after the real ones."""
    use = careful_use_of(variant)
    if use is None:
        return None
    if use == "weighted":
        return CarefulUse(len(real_labels), synthetic_weight=params.careful.synthetic_weight)
    balanced = LossSpec(params.label_smoothing, class_weights=balanced_class_weights(real_labels, num_classes))
    return CarefulUse(len(real_labels), real_epochs=params.careful.real_epochs, real_loss=balanced)


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=params.lr, weight_decay=params.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, params: TrainParams, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch. linear and cosine decay from lr to lr * lr_end_factor over the whole run;
    torch_linearlr is torch's LinearLR with its defaults as a loop that steps it once per epoch runs it."""
    if params.schedule == "torch_linearlr":
        return torch_linearlr_per_batch(optimizer, -(-total_steps // params.epochs))
    if params.schedule == "linear":
        return torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0, end_factor=params.lr_end_factor, total_iters=total_steps
        )
    if params.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=params.lr * params.lr_end_factor
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


# torch.optim.lr_scheduler.LinearLR's defaults
TORCH_LINEARLR_START_FACTOR = 1.0 / 3.0
TORCH_LINEARLR_TOTAL_ITERS = 5


def torch_linearlr_factor(epoch_index: int) -> float:
    """The lr factor of epoch `epoch_index` (0-based) under LinearLR(optimizer) stepped after each epoch."""
    done = min(epoch_index, TORCH_LINEARLR_TOTAL_ITERS) / TORCH_LINEARLR_TOTAL_ITERS
    return TORCH_LINEARLR_START_FACTOR + (1.0 - TORCH_LINEARLR_START_FACTOR) * done


def torch_linearlr_per_batch(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """LinearLR's per-epoch factors, held for every batch of the epoch, so the loop steps every schedule per batch
    (one resume format) and the lr is what a per-epoch LinearLR gives."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: torch_linearlr_factor(step // steps_per_epoch))


@dataclass
class _Run:
    """Everything one training run carries from epoch to epoch, and checkpoints whole."""

    model: nn.Module  # the weights; training goes through their DDP wrapper when there are several ranks
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator  # batch order
    augment: Augmenter
    history: list[EpochRecord] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    best_epoch: int = 0
    best_score: float = -1.0

    def state(self, fingerprint: str) -> dict:
        device = model_device(self.model)
        return {
            "fingerprint": fingerprint,
            "epoch": len(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng.bit_generator.state,
            "augmentation": self.augment.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": [r.to_dict() for r in self.history],
            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
            "best_state": self.best_state,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
        }

    def resume(self, saved: dict) -> None:
        device = model_device(self.model)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.rng.bit_generator.state = saved["rng"]
        self.augment.set_state(saved["augmentation"])
        torch.set_rng_state(saved["torch_rng"].cpu())
        if device.type == "cuda" and "cuda_rng" in saved:
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), device)
        self.history = [EpochRecord(**record) for record in saved["history"]]
        self.best_state, self.best_epoch, self.best_score = (
            saved["best_state"],
            saved["best_epoch"],
            saved["best_score"],
        )


def _train_epoch(
    run: _Run,
    model: nn.Module,
    setup: TrainingSetup,
    train_set: TrainingImages,
    params: TrainParams,
    epoch: int,
    ranks: Ranks,
) -> tuple[float, int]:
    """One pass over the training set in the run's seeded order: (loss sum, correct predictions) over all ranks."""
    model.train()
    device = model_device(run.model)
    steps = -(-len(train_set) // params.batch_size)
    order, loss_spec, weights = _epoch_plan(run.rng, setup, len(train_set), epoch, params.epochs)
    loss_sum, correct = 0.0, 0
    bar = tqdm(range(steps), desc=f"epoch {epoch}/{params.epochs}", unit="batch", disable=None)
    for step in bar:
        batch = order[step * params.batch_size : (step + 1) * params.batch_size]
        pixels = run.augment.batch_pixels(train_set.batch(batch), device, ranks)
        targets = to_device(torch.from_numpy(rank_share(train_set.labels[batch], ranks)), device)
        logits = model(normalize_pixels(pixels, setup.spec.input_format))
        sample_weights = (
            None if weights is None else to_device(torch.from_numpy(rank_share(weights[batch], ranks)), device)
        )
        loss = training_loss(logits, targets, pixels, loss_spec, sample_weights)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite training loss {loss.item()} at epoch {epoch}, step {step + 1}")
        run.optimizer.zero_grad(set_to_none=True)
        # DDP averages over ranks and shares can differ by one: weight so the result is the global batch's mean
        (loss * share_weight(len(targets), len(batch), ranks)).backward()
        run.optimizer.step()
        run.scheduler.step()
        loss_sum += loss.item() * len(targets)
        correct += int((logits.argmax(1) == targets).sum())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    loss_sum, correct = sum_over_ranks(np.array([loss_sum, correct]), ranks)
    return float(loss_sum), int(correct)


def _epoch_plan(
    rng: np.random.Generator, setup: TrainingSetup, size: int, epoch: int, epochs: int
) -> tuple[np.ndarray, LossSpec, np.ndarray | None]:
    """An epoch's batch order over the training set, its loss, and each image's loss weight (None: all 1). In a
    careful entry's real phase the order cycles through the real images only, as many as a full epoch has."""
    careful = setup.careful
    if careful is None:
        return rng.permutation(size), setup.loss_spec, None
    if careful.real_epochs and careful.real_phase(epoch, epochs):
        rounds = -(-size // careful.real_images)
        order = np.concatenate([rng.permutation(careful.real_images) for _ in range(rounds)])[:size]
        return order, careful.real_loss or setup.loss_spec, None
    weights = np.where(np.arange(size) < careful.real_images, 1.0, careful.synthetic_weight).astype(np.float32)
    return rng.permutation(size), setup.loss_spec, None if careful.synthetic_weight == 1.0 else weights


def _validation_confusion(
    model: nn.Module, input_format: InputFormat, val_set: ImageSet, params: TrainParams, ranks: Ranks
) -> np.ndarray:
    """The validation confusion matrix, each rank predicting its share and the counts summed."""
    images, labels = rank_share(val_set.images, ranks), rank_share(val_set.labels, ranks)
    predicted = predict_logits(model, images, input_format, params.eval_batch_size, "validate").argmax(1)
    return sum_over_ranks(confusion_matrix(labels, predicted, val_set.num_classes), ranks)


def _resume(run: _Run, checkpoint: Path, fingerprint: str, epochs: int) -> None:
    """Continue from a checkpoint of the same run (fingerprint), if there is one."""
    if not checkpoint.is_file():
        return
    saved = load_state(checkpoint)  # safetensors and JSON: nothing is unpickled
    if saved["fingerprint"] == fingerprint:
        run.resume(saved)
        log.info("resuming from %s after epoch %d of %d", checkpoint, saved["epoch"], epochs)


def _epoch_record(
    epoch: int, lr: float, train_loss: float, train_accuracy: float, confusion: np.ndarray
) -> EpochRecord:
    """One epoch's row: its training loss and accuracy, and the validation scores from its confusion matrix."""
    return EpochRecord(
        epoch=epoch,
        lr=lr,
        train_loss=round(train_loss, 6),
        train_accuracy=round(train_accuracy, 6),
        val_accuracy=round(float(np.trace(confusion) / confusion.sum()), 6),
        val_macro_f1=round(float(per_class_scores(confusion)["f1"].mean()), 6),
    )


def train_classifier(
    setup: TrainingSetup,
    train_set: TrainingImages,
    val_set: ImageSet,
    params: TrainParams,
    seed: int,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    ranks: Ranks = Ranks(),
) -> TrainResult:
    """Train for params.epochs and keep the weights of the epoch with the best validation macro-F1 (params.select
    best_val) or of the last epoch (last); with params.early_stopping_patience, stop once that many epochs in a row
    have not raised the best validation macro-F1.

    With `checkpoint`, the full training state (weights, optimizer, schedule, every random generator)
    is saved after each epoch and, if it carries the same `fingerprint`, resumed from: an interrupted
    run finishes with exactly the result of an uninterrupted one.

    With several `ranks` (DDP), every rank draws and augments the same global batch and trains on its share,
    the loss weighted so that the result equals the single-process run up to float rounding (docs/operations.md).
    """
    if len(train_set) == 0:
        raise ValueError("training set is empty")
    model = setup.model
    rng = np.random.default_rng(seed)
    augment = make_augmentation(
        params.augment_engine, params.augment_p, seed, params.augment_stages, train_set.image_size
    )
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, params, params.epochs * -(-len(train_set) // params.batch_size))
    run = _Run(model, optimizer, scheduler, rng, augment)
    if checkpoint is not None:
        _resume(run, checkpoint, fingerprint, params.epochs)
    wrapped = wrap_for_ranks(model, ranks)
    for epoch in range(len(run.history) + 1, params.epochs + 1):
        # checked before the epoch, so a run resumed after its stopping epoch stops where the uninterrupted one did
        patience = 0 if setup.careful is not None and setup.careful.real_epochs else params.early_stopping_patience
        if patience_spent(run.best_epoch, epoch - 1, patience):
            best = (params.early_stopping_patience, run.best_score, run.best_epoch)
            log.info("early stop after epoch %d: no rise in %d epochs (best %.4f at epoch %d)", epoch - 1, *best)
            break
        loss_sum, correct = _train_epoch(run, wrapped, setup, train_set, params, epoch, ranks)
        confusion = _validation_confusion(model, setup.spec.input_format, val_set, params, ranks)
        lr = float(optimizer.param_groups[0]["lr"])
        record = _epoch_record(epoch, lr, loss_sum / len(train_set), correct / len(train_set), confusion)
        run.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if record.val_macro_f1 > run.best_score:
            run.best_epoch, run.best_score = epoch, record.val_macro_f1
            run.best_state = copy.deepcopy(model.state_dict())
        if checkpoint is not None and ranks.is_main:
            save_state(checkpoint, run.state(fingerprint))
    stopped = len(run.history) < params.epochs
    if params.select == "last":
        return TrainResult(copy.deepcopy(model.state_dict()), len(run.history), run.history, stopped_early=stopped)
    return TrainResult(run.best_state, run.best_epoch, run.history, stopped_early=stopped)


def patience_spent(best_epoch: int, epoch: int, patience: int) -> bool:
    """After `epoch`, whether `patience` (> 0) epochs in a row have passed without a new best; 0 never stops."""
    return patience > 0 and epoch - best_epoch >= patience


def spec_from_params(kind: str, params: TrainParams, num_classes: int) -> ClassifierSpec:
    """The architecture section of train params for `kind`, as a self-contained spec: vit and cnn read
    train.image_size in [-1, 1]; timm reads what its pretrained config says (train.timm.image_size may resize)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown classifier {kind!r} (allowed: {', '.join(BUILDERS)})")
    options = getattr(params, kind).model_dump()
    if kind == "timm":  # its own input size and normalization, whatever train.image_size the others read
        input_format = timm_input_format(options["name"], options.pop("image_size"))
        return ClassifierSpec(kind, num_classes, input_format.size, options, input_format.mean, input_format.std)
    return ClassifierSpec(kind=kind, num_classes=num_classes, image_size=params.image_size, options=options)


def history_csv(history: list[EpochRecord]) -> str:
    return rows_csv([record.to_dict() for record in history])
