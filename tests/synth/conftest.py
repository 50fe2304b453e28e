from __future__ import annotations

from pathlib import Path

import pytest

from synthaug.params import SdxlTurboParams, SynthesizeParams, parse_section
from synthaug.synth.tiny import build_tiny_sdxl


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
        batch_size=3,
        device="cpu",
    )
    return parse_section("synthesize", raw, SynthesizeParams)


def with_backend(params: SynthesizeParams, **changes) -> SdxlTurboParams:
    return params.sdxl_turbo.model_copy(update=changes)
