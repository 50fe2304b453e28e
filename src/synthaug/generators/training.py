"""The training loop shared by the pipeline's own generators (DDPM, GAN): batches, checkpoints, resume.

One CPU torch.Generator draws every random number of the run (batches, flips, noise, timesteps), and its
state is saved in each checkpoint with the weights and optimizers, so a run resumed from step k ends with
exactly the weights of a run that never stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from synthaug.core.distributed import Ranks
from synthaug.core.errors import NonFiniteLoss
from synthaug.core.generator_params import DdpmSampleParams, GanSampleParams, TrainGeneratorParams
from synthaug.core.resume import load_state, save_state
from synthaug.core.variants import TRAINED_GENERATORS
from synthaug.data.storage import ImageSet

log = logging.getLogger("synthaug.generators")

CHECKPOINT_FILE = "checkpoint.safetensors"


class GeneratorTrainer(Protocol):
    name: str
    device: torch.device

    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor, rng: torch.Generator, step: int
    ) -> dict[str, float]: ...
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...
    def export(self, folder: Path) -> None: ...
    def sampler(self, sample_params: Any) -> Callable[[np.ndarray, list[int]], np.ndarray]: ...


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    batch_size: int
    seed: int
    balanced_sampling: bool
    horizontal_flip: bool
    log_every: int
    checkpoint_every: int
    sample_every: int

    @classmethod
    def from_params(cls, params: TrainGeneratorParams, generator: str) -> LoopSettings:
        """The common train_generator keys and `generator`'s own steps and batch size."""
        section = getattr(params, generator)
        return cls(
            steps=section.steps,
            batch_size=section.batch_size,
            seed=params.seed,
            balanced_sampling=params.balanced_sampling,
            horizontal_flip=params.horizontal_flip,
            log_every=params.log_every,
            checkpoint_every=params.checkpoint_every,
            sample_every=params.sample_every,
        )


@dataclass
class LoopResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per log_every steps (means)
    resumed_from: int = 0


class BatchSampler:
    """Image indices per step: uniform over images, or uniform over classes then images (balanced)."""

    def __init__(self, labels: np.ndarray, num_classes: int, balanced: bool) -> None:
        self.balanced = balanced
        self.members = [torch.from_numpy(np.flatnonzero(labels == c)) for c in range(num_classes)]
        self.members = [m for m in self.members if len(m)]
        self.size = len(labels)

    def __call__(self, count: int, rng: torch.Generator) -> torch.Tensor:
        if not self.balanced:
            return torch.randint(0, self.size, (count,), generator=rng)
        classes = torch.randint(0, len(self.members), (count,), generator=rng)
        picks = torch.rand(count, generator=rng)
        return torch.stack([self.members[c][int(p * len(self.members[c]))] for c, p in zip(classes.tolist(), picks)])


def to_training_batch(images: np.ndarray, flip: torch.Tensor | None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], mirrored where `flip` is true."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if flip is not None:
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
    return batch


def _resume(
    trainer: GeneratorTrainer, checkpoint: Path, fingerprint: str, rng: torch.Generator, result: LoopResult
) -> dict[str, list[float]]:
    """Restore trainer, rng and history from a checkpoint of the same run (fingerprint); its loss window."""
    if not checkpoint.is_file():
        return {}
    saved = load_state(checkpoint)
    if saved["fingerprint"] != fingerprint:
        return {}
    trainer.load_state(saved["trainer"])
    rng.set_state(saved["rng"])
    result.history, result.resumed_from = saved["history"], saved["step"]
    return saved["window"]


def _training_batch(
    data: ImageSet, sampler: BatchSampler, settings: LoopSettings, rng: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next batch drawn from `rng`: images in [-1, 1] (flipped at random if asked) and their labels."""
    indices = sampler(settings.batch_size, rng)
    flip = torch.rand(len(indices), generator=rng) < 0.5 if settings.horizontal_flip else None
    images = to_training_batch(data.images[indices.numpy()], flip).to(device, non_blocking=True)
    labels = torch.from_numpy(data.labels[indices.numpy()]).to(device, non_blocking=True)
    return images, labels


def train_generator_loop(
    trainer: GeneratorTrainer,
    data: ImageSet,
    settings: LoopSettings,
    workdir: Path,
    fingerprint: str,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    on_samples: Callable[[int], None] | None = None,
    ranks: Ranks = Ranks(),
) -> LoopResult:
    """Train `trainer` for settings.steps steps on `data`, checkpointing into `workdir` (resumed if it matches).

    With several `ranks` every rank draws the same global batches (one seed) and the trainer trains on its
    share; only rank 0 logs, draws samples and writes checkpoints (every rank resumes from them).
    """
    if len(data) == 0:
        raise ValueError("generator training set is empty")
    rng = torch.Generator().manual_seed(settings.seed)
    result = LoopResult()
    checkpoint = workdir / CHECKPOINT_FILE
    window = _resume(trainer, checkpoint, fingerprint, rng, result)  # losses since the last history row
    start_step = result.resumed_from
    if start_step:
        log.info("%s: resuming from %s at step %d of %d", trainer.name, checkpoint, start_step, settings.steps)
    workdir.mkdir(parents=True, exist_ok=True)
    last_checkpoint = start_step
    sampler = BatchSampler(data.labels, data.num_classes, settings.balanced_sampling)
    bar = tqdm(
        range(start_step, settings.steps),
        desc=f"train {trainer.name}",
        unit="step",
        disable=None if ranks.is_main else True,
    )
    for step in bar:
        images, labels = _training_batch(data, sampler, settings, rng, trainer.device)
        losses = trainer.train_step(images, labels, rng, step)
        bad = {k: v for k, v in losses.items() if not np.isfinite(v)}
        if bad:
            kept = f"the checkpoint of step {last_checkpoint} is kept in {workdir}" if last_checkpoint else "none yet"
            raise NonFiniteLoss(f"{trainer.name}: non-finite loss {bad} at step {step + 1}; {kept}")
        for key, value in losses.items():
            window.setdefault(key, []).append(value)
        done = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            row = {"step": done, **{k: round(float(np.mean(v)), 6) for k, v in window.items()}}
            result.history.append(row)
            window.clear()
            bar.set_postfix({k: f"{v:.3f}" for k, v in row.items() if k != "step"}, refresh=False)
            if on_log is not None and ranks.is_main:
                on_log(done, row)
        if on_samples is not None and ranks.is_main and (done % settings.sample_every == 0 or done == settings.steps):
            on_samples(done)
        if done % settings.checkpoint_every == 0 and done != settings.steps and ranks.is_main:
            state = {"trainer": trainer.state(), "rng": rng.get_state(), "history": result.history, "window": window}
            save_state(checkpoint, {"fingerprint": fingerprint, "step": done, **state})
            last_checkpoint = done
    return result


def build_trainer(
    generator: str,
    params: TrainGeneratorParams,
    image_size: int,
    num_classes: int,
    device: torch.device,
    ranks: Ranks = Ranks(),
) -> GeneratorTrainer:
    if generator == "ddpm":
        from synthaug.generators.ddpm import DdpmTrainer

        return DdpmTrainer(params.ddpm, image_size, num_classes, device, ranks)
    if generator == "gan":
        from synthaug.generators.gan import GanTrainer

        return GanTrainer(params.gan, image_size, num_classes, device, ranks)
    raise ValueError(f"{generator!r} is not trained by the pipeline (allowed: {', '.join(TRAINED_GENERATORS)})")


def preview_sampler(
    trainer: GeneratorTrainer, params: TrainGeneratorParams, num_classes: int
) -> Callable[[np.ndarray, list[int]], np.ndarray]:
    """The sampler behind the sample grids drawn while training (DDIM, no guidance, one batch)."""
    batch = num_classes * params.samples_per_class
    if trainer.name == "ddpm":
        return trainer.sampler(
            DdpmSampleParams(
                sampler="ddim", steps=params.ddpm.preview_steps, guidance_scale=1.0, batch_size=batch, device="cpu"
            )
        )
    return trainer.sampler(GanSampleParams(batch_size=batch, device="cpu"))


def class_grid(
    sample: Callable[[np.ndarray, list[int]], np.ndarray], num_classes: int, per_class: int, seed: int
) -> np.ndarray:
    """One row per class, the same seeds every time, so successive grids show training progress."""
    from synthaug.core.plots import image_grid
    from synthaug.core.seeding import derive_seed

    labels = np.repeat(np.arange(num_classes), per_class)
    images = sample(labels, [derive_seed(seed, "preview", int(c), i % per_class) for i, c in enumerate(labels)])
    return image_grid([images[labels == c] for c in range(num_classes)])
