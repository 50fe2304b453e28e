"""Class-conditional DDPM: a diffusers UNet2DModel with a class embedding, trained on the imbalanced split.

Training: DDPMScheduler noise, epsilon or v prediction, AdamW with warm-up, gradient clipping, EMA weights,
labels dropped to a null class with `class_dropout` so sampling can use classifier-free guidance.
Sampling: DDIM (eta 0) or DPM-Solver++ from per-image seeded noise, so every image is reproducible alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthaug.core.distributed import (
    Ranks,
    global_means,
    rank_share,
    share_weight,
    wrap_for_ranks,
)
from synthaug.core.generator_params import DdpmSampleParams, DdpmTrainParams

UNET_FOLDER = "unet"
SCHEDULER_FOLDER = "scheduler"


def build_unet(params: DdpmTrainParams, image_size: int, num_classes: int) -> Any:
    """A diffusers UNet2DModel (an nn.Module its stubs do not type as one) with one extra class index
    (`num_classes`) meaning "no label" for guidance."""
    from diffusers import UNet2DModel

    channels = tuple(params.block_out_channels)
    plain_down, plain_up = ["DownBlock2D"] * len(channels), ["UpBlock2D"] * len(channels)
    if params.attention:  # self-attention at the lowest resolution only: cheap at 32 px, helps global shape
        plain_down[-1], plain_up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=channels,
        layers_per_block=params.layers_per_block,
        down_block_types=tuple(plain_down),
        up_block_types=tuple(plain_up),
        norm_num_groups=min(32, math.gcd(*channels)),
        num_class_embeds=num_classes + 1,
        attention_head_dim=None,
    )


def build_noise_scheduler(params: DdpmTrainParams) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=params.num_train_timesteps,
        beta_schedule=params.beta_schedule,
        prediction_type=params.prediction_type,
    )


class Ema:
    """Exponential moving average of the weights, with the usual warm-up so short runs are not all init."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.model: Any = copy.deepcopy(model).eval().requires_grad_(False)  # a diffusers model: save_pretrained
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_params: list[torch.Tensor] = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)


class DdpmTrainer:
    """One optimisation step at a time; everything needed to resume is in `state()`."""

    name = "ddpm"

    def __init__(
        self, params: DdpmTrainParams, image_size: int, num_classes: int, device: torch.device, ranks: Ranks = Ranks()
    ) -> None:
        self.params, self.num_classes, self.device, self.ranks = params, num_classes, device, ranks
        self.model = build_unet(params, image_size, num_classes).to(device)
        # DDP over the ranks; None on one process, so that a later swap of self.model (torch.compile) is what trains
        self.replicated = wrap_for_ranks(self.model, ranks) if ranks.distributed else None
        self.ema = Ema(self.model, params.ema_decay)
        self.scheduler = build_noise_scheduler(params)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        warmup = max(params.warmup_steps, 1)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: min(1.0, (step + 1) / warmup))
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(params.mixed_precision)
        if device.type != "cuda":
            self.autocast_dtype = None  # mixed precision is a CUDA speed-up; CPU stays fp32 and deterministic
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(device)

    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor, rng: torch.Generator, step: int
    ) -> dict[str, float]:
        """images in [-1, 1], (N, 3, H, W) on the device; all randomness drawn from `rng` (CPU).

        With several ranks, `images` is the global batch (the same on every rank, as is `rng`): each rank
        draws the global batch's noise, trains on its interleaved share, and DDP averages the gradients,
        weighted to the global batch's mean: one process's step up to float rounding.
        """
        count = images.shape[0]
        noise = torch.randn(images.shape, generator=rng).to(self.device)
        timesteps = torch.randint(0, self.params.num_train_timesteps, (count,), generator=rng).to(self.device)
        dropped = torch.rand(count, generator=rng).to(self.device) < self.params.class_dropout
        labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        images, labels, noise, timesteps = (rank_share(t, self.ranks) for t in (images, labels, noise, timesteps))
        alpha_bar = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        noisy = alpha_bar.sqrt() * images + (1 - alpha_bar).sqrt() * noise
        self.model.train()
        model = self.replicated or self.model
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None
        ):
            predicted = model(noisy, timesteps, class_labels=labels).sample
        # v = sqrt(a) * noise - sqrt(1 - a) * x: no division by sqrt(a) when the sampler recovers x at high noise
        target = (
            noise
            if self.params.prediction_type == "epsilon"
            else alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * images
        )
        loss = F.mse_loss(predicted.float(), target)
        share = len(images)
        losses = global_means({"loss": float(loss.item())}, share, count, self.ranks)  # every rank decides alike
        if not math.isfinite(losses["loss"]):
            return losses
        self.optimizer.zero_grad(set_to_none=True)
        self.grad_scaler.scale(loss * share_weight(share, count, self.ranks)).backward()
        self.grad_scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.params.grad_clip)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        self.lr_schedule.step()
        self.ema.update(self.model, step)
        # the gradients, hence their norm, are the same on every rank after DDP's all-reduce
        return {**losses, "grad_norm": float(grad_norm)}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        if state["grad_scaler"]:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

    def sampler(self, sample_params: DdpmSampleParams) -> DdpmSampler:
        return DdpmSampler(self.ema.model, self.scheduler.config, self.num_classes, sample_params, self.device)

    def export(self, folder: Path) -> None:
        """The EMA weights and the noise schedule, as diffusers folders (`from_pretrained` loads them)."""
        self.ema.model.save_pretrained(folder / UNET_FOLDER)
        self.scheduler.save_pretrained(folder / SCHEDULER_FOLDER)


class DdpmSampler:
    """(labels, seeds) -> uint8 images; each image's starting noise comes from its own seed."""

    def __init__(
        self, unet: Any, scheduler_config: Any, num_classes: int, params: DdpmSampleParams, device: torch.device
    ) -> None:
        self.unet, self.scheduler_config, self.num_classes = unet.eval(), scheduler_config, num_classes
        self.params, self.device = params, device

    @classmethod
    def load(cls, folder: Path, num_classes: int, params: DdpmSampleParams, device: torch.device) -> DdpmSampler:
        from diffusers import DDPMScheduler, UNet2DModel

        unet = UNet2DModel.from_pretrained(folder / UNET_FOLDER).to(device)
        return cls(unet, DDPMScheduler.from_pretrained(folder / SCHEDULER_FOLDER).config, num_classes, params, device)

    def _fresh_scheduler(self) -> Any:
        # DPM-Solver keeps previous model outputs between steps, so every batch gets its own instance.
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        if self.params.sampler == "ddim":
            scheduler = DDIMScheduler.from_config(self.scheduler_config, timestep_spacing="trailing")
        else:
            scheduler = DPMSolverMultistepScheduler.from_config(
                self.scheduler_config, algorithm_type="dpmsolver++", timestep_spacing="trailing"
            )
        scheduler.set_timesteps(self.params.steps)
        return scheduler

    @torch.inference_mode()
    def __call__(self, labels: np.ndarray, seeds: list[int]) -> np.ndarray:
        size = self.unet.config.sample_size
        outputs = []
        for start in range(0, len(labels), self.params.batch_size):
            batch_seeds = seeds[start : start + self.params.batch_size]
            noise = torch.stack(
                [torch.randn((3, size, size), generator=torch.Generator().manual_seed(seed)) for seed in batch_seeds]
            ).to(self.device)
            batch_labels = torch.as_tensor(labels[start : start + self.params.batch_size], device=self.device)
            outputs.append(self._denoise(noise, batch_labels))
        return to_uint8_images(torch.cat(outputs)) if outputs else np.zeros((0, size, size, 3), np.uint8)

    def _denoise(self, sample: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scheduler = self._fresh_scheduler()
        guided = self.params.guidance_scale != 1.0
        null = torch.full_like(labels, self.num_classes)
        sample = sample * scheduler.init_noise_sigma
        for timestep in scheduler.timesteps:
            model_input = scheduler.scale_model_input(sample, timestep)
            if guided:  # conditional and unconditional in one batch
                both = self.unet(
                    torch.cat([model_input, model_input]), timestep, class_labels=torch.cat([labels, null])
                ).sample
                conditional, unconditional = both.chunk(2)
                noise = unconditional + self.params.guidance_scale * (conditional - unconditional)
            else:
                noise = self.unet(model_input, timestep, class_labels=labels).sample
            sample = scheduler.step(noise, timestep, sample).prev_sample
        return sample


def to_uint8_images(batch: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (N, 3, H, W) -> uint8 (N, H, W, 3)."""
    pixels = ((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()
