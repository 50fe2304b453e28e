"""Class-conditional DCGAN with the reference study's options, for 2^k-pixel images (32 px for CIFAR-10).

Generator: [z, label embedding] -> 4x4 map -> up blocks (transposed conv, upsample + conv, or CSP-style
split blocks), BatchNorm + LeakyReLU, tanh output. Discriminator: DCGAN conv stack with LeakyReLU, the label
through a projection head or an embedding plane, optional spectral norm (SNGAN, then no BatchNorm in D).
Loss: non-saturating BCE with one-sided label smoothing, or hinge; Adam with separate learning rates for D and G.
For few images per class (the minority classes): DiffAugment on every discriminator input (generators/diff_augment.py),
transitional conditioning (Shahbazi et al. 2022: the label's weight in both networks ramps from 0 to 1, so the
networks first learn the images, then the classes), the LeCam penalty (Tseng et al. 2021) and the mode-seeking
term (Mao et al. 2019: a generator that maps two latents of one class to one image is penalized), each a param.
Several processes: DDP for both networks; BatchNorm is synchronized over ranks on CUDA (SyncBatchNorm),
per rank on the CPU, where torch has no SyncBatchNorm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from synthaug.core.distributed import (
    Ranks,
    global_means,
    rank_share,
    share_weight,
    sync_batch_norm_for_ranks,
    wrap_for_ranks,
)
from synthaug.core.generator_params import GanSampleParams, GanTrainParams
from synthaug.core.io import read_json, write_json
from synthaug.generators.ddpm import to_uint8_images
from synthaug.generators.diff_augment import diff_augment

WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"


def _up_block(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    if kind == "transposed":
        return nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )
    if kind == "upsample":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )
    return CspUpBlock(in_channels, out_channels)


class CspUpBlock(nn.Module):
    """Cross-stage-partial up block: half the channels go through two convs, half take a 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.deep = nn.Sequential(
            nn.Conv2d(in_channels, half, 3, 1, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.LeakyReLU(0.2),
            nn.Conv2d(half, half, 3, 1, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.LeakyReLU(0.2),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels - half, 1, bias=False))
        self.transition = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        return self.transition(torch.cat([self.deep(x), self.shortcut(x)], dim=1))


def _levels(image_size: int) -> int:
    levels = int(math.log2(image_size)) - 2  # from 4x4 up to image_size
    if 2 ** (levels + 2) != image_size or levels < 1:
        raise ValueError(f"GAN image size must be a power of two >= 8, got {image_size}")
    return levels


class ConditionalGenerator(nn.Module):
    def __init__(self, latent_dim: int, num_classes: int, base_channels: int, image_size: int, block: str) -> None:
        super().__init__()
        levels = _levels(image_size)
        widths = [base_channels * 2 ** (levels - i) for i in range(levels + 1)]  # e.g. 256, 128, 64, 32
        self.latent_dim, self.image_size = latent_dim, image_size
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.stem = nn.Sequential(
            nn.Linear(2 * latent_dim, widths[0] * 16, bias=False), nn.BatchNorm1d(widths[0] * 16), nn.LeakyReLU(0.2)
        )
        self.blocks = nn.Sequential(*[_up_block(block, widths[i], widths[i + 1]) for i in range(levels)])
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor, conditioning: float = 1.0) -> torch.Tensor:
        """`conditioning` weighs the label (transitional conditioning; 1 once training is done)."""
        x = self.stem(torch.cat([z, self.embed(labels) * conditioning], dim=1)).view(z.shape[0], -1, 4, 4)
        # channels-last activations: oneDNN's faster convolutions on CPU (the GAN step 1.2x on 2 cores)
        return torch.tanh(self.to_rgb(self.blocks(x.contiguous(memory_format=torch.channels_last))))


class ConditionalDiscriminator(nn.Module):
    def __init__(
        self, num_classes: int, base_channels: int, image_size: int, conditioning: str, spectral_norm: bool
    ) -> None:
        super().__init__()
        levels = _levels(image_size)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda module: module)
        self.conditioning, self.image_size = conditioning, image_size
        in_channels = 4 if conditioning == "embedding" else 3
        if conditioning == "embedding":  # the label as an extra input plane
            self.label_plane = nn.Embedding(num_classes, image_size * image_size)
        layers: list[nn.Module] = []
        width = in_channels
        for i in range(levels):
            out = base_channels * 2**i
            layers.append(wrap(nn.Conv2d(width, out, 4, 2, 1, bias=i == 0 or spectral_norm)))
            if i > 0 and not spectral_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2))
            width = out
        self.features = nn.Sequential(*layers)
        self.head = wrap(nn.Linear(width, 1))
        if conditioning == "projection":  # Miyato & Koyama: logit += <embed(y), features>
            projection = nn.Embedding(num_classes, width)
            nn.init.xavier_uniform_(projection.weight)  # N(0, 1) rows would swamp the logit at the start
            self.projection = wrap(projection)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, conditioning: float = 1.0) -> torch.Tensor:
        """`conditioning` weighs the label's term (0: an unconditional discriminator)."""
        if self.conditioning == "embedding":
            plane = self.label_plane(labels).view(-1, 1, self.image_size, self.image_size) * conditioning
            images = torch.cat([images, plane], dim=1)
        pooled = self.features(images.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))
        logit = self.head(pooled).squeeze(1)
        if self.conditioning == "projection":
            logit = logit + conditioning * (self.projection(labels) * pooled).sum(dim=1)
        return logit


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str, label_smoothing: float
) -> torch.Tensor:
    """bce: cross-entropy with one-sided label smoothing (real targets `label_smoothing`, fake targets 0);
    hinge: mean(relu(1 - real)) + mean(relu(1 + fake)), as SNGAN."""
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, label_smoothing)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def conditioning_weight(step: int, start: int, steps: int) -> float:
    """Transitional conditioning: 0 before `start`, then rising linearly to 1 over `steps` steps (at once if 0)."""
    if step < start:
        return 0.0
    return 1.0 if steps == 0 else min(1.0, (step - start) / steps)


LECAM_DECAY = 0.99  # the moving averages of the discriminator's outputs the penalty pulls towards (Tseng et al.)


def lecam_penalty(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_anchor: float, fake_anchor: float
) -> torch.Tensor:
    """LeCam regularization: real logits above the fake logits' moving average, and fake logits below the real
    ones', are penalized quadratically, which keeps the discriminator from drifting apart on few images."""
    return F.relu(real_logits - fake_anchor).pow(2).mean() + F.relu(real_anchor - fake_logits).pow(2).mean()


MODE_SEEKING_EPSILON = 1e-5


def mode_seeking_penalty(
    images: torch.Tensor, paired_images: torch.Tensor, latents: torch.Tensor, paired_latents: torch.Tensor
) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019): the inverse of how far the images of two latents of the same labels lie,
    per unit of latent distance; a generator that ignores its latent pays 1 / epsilon."""
    spread = (images - paired_images).abs().mean() / (latents - paired_latents).abs().mean()
    return 1.0 / (spread + MODE_SEEKING_EPSILON)


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """bce: the non-saturating loss, -log sigmoid(fake); hinge: -mean(fake), as SNGAN."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class GanTrainer:
    """One D step then one G step per training step; everything needed to resume is in `state()`."""

    name = "gan"

    def __init__(
        self, params: GanTrainParams, image_size: int, num_classes: int, device: torch.device, ranks: Ranks = Ranks()
    ) -> None:
        self.params, self.num_classes, self.image_size, self.device, self.ranks = (
            params,
            num_classes,
            image_size,
            device,
            ranks,
        )
        generator = ConditionalGenerator(
            params.latent_dim, num_classes, params.base_channels, image_size, params.generator_block
        )
        discriminator = ConditionalDiscriminator(
            num_classes, params.base_channels, image_size, params.discriminator_conditioning, params.spectral_norm
        )
        self.generator = sync_batch_norm_for_ranks(generator.to(device), ranks)
        self.discriminator = sync_batch_norm_for_ranks(discriminator.to(device), ranks)
        # DDP replicas over the ranks (None on one process); BatchNorm buffers follow rank 0's
        self.replicated = (
            (wrap_for_ranks(self.generator, ranks), wrap_for_ranks(self.discriminator, ranks))
            if ranks.distributed
            else None
        )
        betas = (params.beta1, params.beta2)
        # Adam's weight_decay adds the L2 penalty's gradient (decay * w), one strength per network.
        self.optimizer_g = torch.optim.Adam(
            self.generator.parameters(),
            lr=params.lr_generator,
            betas=betas,
            weight_decay=params.weight_decay_generator,
        )
        self.optimizer_d = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=params.lr_discriminator,
            betas=betas,
            weight_decay=params.weight_decay_discriminator,
        )
        self.lecam_anchors = {"real": 0.0, "fake": 0.0}  # moving averages of D's mean logits (LeCam)

    def augment(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return diff_augment(images, self.params.diff_augment, rng)

    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor, rng: torch.Generator, step: int
    ) -> dict[str, float]:
        """One D step, then one G step. With several ranks, `images` is the global batch (the same on every
        rank, as is `rng`): each rank draws the global batch's latents and trains on its interleaved share;
        DDP averages the gradients, weighted to the global batch's mean."""
        count = images.shape[0]
        z = torch.randn((count, self.params.latent_dim), generator=rng).to(self.device)
        fake_labels = torch.randint(0, self.num_classes, (count,), generator=rng).to(self.device)
        images, labels, z, fake_labels = (rank_share(t, self.ranks) for t in (images, labels, z, fake_labels))
        share = len(images)
        weight = share_weight(share, count, self.ranks)
        generator, discriminator = self.replicated or (self.generator, self.discriminator)
        self.generator.train()
        self.discriminator.train()
        conditioning = conditioning_weight(step, self.params.conditioning_start, self.params.conditioning_steps)
        fake = generator(z, fake_labels, conditioning)

        real_logits = discriminator(self.augment(images, rng), labels, conditioning)
        fake_logits = discriminator(self.augment(fake.detach(), rng), fake_labels, conditioning)
        loss_d = discriminator_loss(real_logits, fake_logits, self.params.loss, self.params.label_smoothing)
        if self.params.lecam_weight > 0:
            loss_d = loss_d + self.params.lecam_weight * self._lecam(real_logits, fake_logits, share, count)
        losses = global_means({"loss_d": float(loss_d.item())}, share, count, self.ranks)  # every rank decides alike
        if not math.isfinite(losses["loss_d"]):
            return losses
        self.optimizer_d.zero_grad(set_to_none=True)
        (loss_d * weight).backward()
        self.optimizer_d.step()

        fake_logits = discriminator(self.augment(fake, rng), fake_labels, conditioning)
        loss_g = generator_loss(fake_logits, self.params.loss)
        if self.params.mode_seeking_weight > 0:  # a second latent per image, the same labels
            z_pair = rank_share(torch.randn((count, self.params.latent_dim), generator=rng).to(self.device), self.ranks)
            paired = generator(z_pair, fake_labels, conditioning)
            loss_g = loss_g + self.params.mode_seeking_weight * mode_seeking_penalty(fake, paired, z, z_pair)
        losses = global_means(
            {
                "loss_d": float(loss_d.item()),
                "loss_g": float(loss_g.item()),
                "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()),
            },
            share,
            count,
            self.ranks,
        )
        if not math.isfinite(losses["loss_g"]):
            return losses
        self.optimizer_g.zero_grad(set_to_none=True)
        (loss_g * weight).backward()
        self.optimizer_g.step()
        return losses

    def _lecam(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, share: int, count: int) -> torch.Tensor:
        """The LeCam penalty against the anchors so far; then the anchors move toward this batch's mean logits."""
        anchors = self.lecam_anchors
        penalty = lecam_penalty(real_logits, fake_logits, anchors["real"], anchors["fake"])
        means = global_means(
            {"real": float(real_logits.detach().mean()), "fake": float(fake_logits.detach().mean())},
            share,
            count,
            self.ranks,
        )
        for side in anchors:
            anchors[side] = LECAM_DECAY * anchors[side] + (1 - LECAM_DECAY) * means[side]
        return penalty

    def state(self) -> dict[str, Any]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "lecam_anchors": dict(self.lecam_anchors),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.lecam_anchors = dict(state["lecam_anchors"])

    def sampler(self, sample_params: GanSampleParams) -> GanSampler:
        return GanSampler(self.generator, sample_params, self.device)

    def export(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.generator.state_dict().items()},
            str(folder / WEIGHTS_FILE),
        )
        config = {
            "latent_dim": self.params.latent_dim,
            "num_classes": self.num_classes,
            "base_channels": self.params.base_channels,
            "image_size": self.image_size,
            "block": self.params.generator_block,
        }
        write_json(folder / CONFIG_FILE, config)


class GanSampler:
    """(labels, seeds) -> uint8 images; each image's latent comes from its own seed."""

    def __init__(self, generator: ConditionalGenerator, params: GanSampleParams, device: torch.device) -> None:
        self.generator, self.params, self.device = generator, params, device

    @classmethod
    def load(cls, folder: Path, params: GanSampleParams, device: torch.device) -> GanSampler:
        generator = ConditionalGenerator(**read_json(folder / CONFIG_FILE))
        generator.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return cls(generator.to(device), params, device)

    @torch.inference_mode()
    def __call__(self, labels: np.ndarray, seeds: list[int]) -> np.ndarray:
        self.generator.eval()  # BatchNorm running statistics: an image does not depend on its batch
        latent = self.generator.latent_dim
        outputs = []
        for start in range(0, len(labels), self.params.batch_size):
            z = torch.stack(
                [
                    torch.randn(latent, generator=torch.Generator().manual_seed(seed))
                    for seed in seeds[start : start + self.params.batch_size]
                ]
            ).to(self.device)
            batch_labels = torch.as_tensor(labels[start : start + self.params.batch_size], device=self.device)
            outputs.append(self.generator(z, batch_labels))
        size = self.generator.image_size
        return to_uint8_images(torch.cat(outputs)) if outputs else np.zeros((0, size, size, 3), np.uint8)
