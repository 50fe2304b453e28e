from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthaug.core.generator_params import SdxlTurboParams, SynthesizeParams, TrainGeneratorParams
from synthaug.core.param_rules import parse_section
from synthaug.data.storage import ImageSet
from synthaug.tools.tiny import build_tiny_sdxl


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture
def tiny_synth_params(project_params, tiny_sdxl) -> SynthesizeParams:
    raw = dict(project_params["synthesize"], shard_size=4, preview_per_class=2)
    raw["sdxl_turbo"] = dict(
        raw["sdxl_turbo"],
        model=str(tiny_sdxl[0]),
        controlnet=str(tiny_sdxl[1]),
        vae=None,
        resolution=64,
        image_size=None,
        batch_size=3,
        device="cpu",
    )
    return parse_section("synthesize", raw, SynthesizeParams)


def with_backend(params: SynthesizeParams, **changes) -> SdxlTurboParams:
    return params.sdxl_turbo.model_copy(update=changes)


CLASSES = ("cat", "dog", "frog")


@pytest.fixture
def generator_params(project_params) -> TrainGeneratorParams:
    raw = dict(project_params["train_generator"], log_every=2, checkpoint_every=3, sample_every=3, samples_per_class=2)
    raw["ddpm"] = dict(
        raw["ddpm"],
        steps=6,
        batch_size=4,
        block_out_channels=[8, 16],
        layers_per_block=1,
        attention=False,
        preview_steps=2,
        warmup_steps=2,
    )
    # the limited-data options off (a preset may turn them on): their tests switch them on one at a time
    raw["gan"] = dict(
        raw["gan"],
        steps=6,
        batch_size=4,
        latent_dim=8,
        base_channels=8,
        diff_augment=[],
        conditioning_start=0,
        conditioning_steps=0,
        lecam_weight=0.0,
        mode_seeking_weight=0.0,
    )
    return parse_section("train_generator", raw, TrainGeneratorParams)


@pytest.fixture
def tiny_images() -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [2, 4, 8])
    images = (rng.integers(0, 60, (len(labels), 8, 8, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
    return ImageSet(images, labels, CLASSES)
