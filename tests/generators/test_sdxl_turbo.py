"""The real SDXL-Turbo code path on a tiny random pipeline loaded with from_pretrained (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.generators.sdxl_turbo import SdxlTurboGenerator, canny_edges, load_pipeline
from synthaug.synthetic.plan import plan_items

from .conftest import with_backend

LABELS = np.repeat(np.arange(2), 4)
NAMES = ("cat", "dog")


def real_images(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.zeros((8, 32, 32, 3), np.uint8)
    images[:, 8:24, 8:24] = rng.integers(100, 255, (8, 1, 1, 3), dtype=np.uint8)  # a square: strong edges
    return images


def items(count: int = 5):
    return plan_items(np.arange(8), LABELS, NAMES, np.array([count, 0]), ["a photo of a {name}"], seed=1)


@pytest.mark.parametrize("mode", ["controlnet", "text_only", "img2img"])
def test_generates_dataset_sized_uint8_deterministically(tiny_synth_params, mode):
    changes = {"controlnet": None} if mode == "text_only" else {}
    if mode == "img2img":
        changes = {"img2img_strength": 0.5, "steps": 2}
    params = with_backend(tiny_synth_params, **changes)
    generator = SdxlTurboGenerator(params, real_images(), 32, torch.device("cpu"))
    first = generator(items())
    assert first.shape == (5, 32, 32, 3) and first.dtype == np.uint8
    assert first.std() > 0  # not a constant image
    np.testing.assert_array_equal(first, generator(items()))  # same seeds, same bytes
    alone = generator(items()[2:3])  # any image can be regenerated alone
    np.testing.assert_allclose(alone[0].astype(int), first[2].astype(int), atol=2)


def test_pipeline_class_follows_params(tiny_synth_params):
    cpu = torch.device("cpu")
    assert type(load_pipeline(tiny_synth_params.sdxl_turbo, cpu)).__name__ == "StableDiffusionXLControlNetPipeline"
    assert (
        type(load_pipeline(with_backend(tiny_synth_params, controlnet=None), cpu)).__name__
        == "StableDiffusionXLPipeline"
    )
    img2img = load_pipeline(with_backend(tiny_synth_params, img2img_strength=0.5), cpu)
    assert type(img2img).__name__ == "StableDiffusionXLControlNetImg2ImgPipeline"


def test_canny_edges_are_upscaled_binary_maps():
    edges = canny_edges(real_images()[:2], 64, 100, 200)
    pixels = np.asarray(edges[0])
    assert pixels.shape == (64, 64, 3)
    assert set(np.unique(pixels)) <= {0, 255} and (pixels == 255).any()
    assert not (pixels[:8, :8] == 255).any()  # flat background has no edges


def test_vae_slicing_keeps_the_images(tiny_synth_params):
    plain = SdxlTurboGenerator(tiny_synth_params.sdxl_turbo, real_images(), 32, torch.device("cpu"))
    sliced = SdxlTurboGenerator(
        with_backend(tiny_synth_params, vae_slicing=True), real_images(), 32, torch.device("cpu")
    )
    assert sliced.pipeline.vae.use_slicing and not plain.pipeline.vae.use_slicing
    np.testing.assert_allclose(sliced(items(4)).astype(int), plain(items(4)).astype(int), atol=2)


def test_images_are_stored_at_sdxl_turbo_image_size_and_the_trained_generators_at_the_datasets(
    tiny_synth_params, tmp_path
):
    from synthaug.core.io import write_json
    from synthaug.generators.backends import GENERATOR_FILE, make_backend, stored_size

    write_json(tmp_path / GENERATOR_FILE, {"generator": "sdxl_turbo", "trained": False})
    params = tiny_synth_params.model_copy(update={"sdxl_turbo": with_backend(tiny_synth_params, image_size=48)})
    backend = make_backend("sdxl_turbo", params, tmp_path, real_images(), NAMES)
    images = backend(items(2))
    assert images.shape == (2, 48, 48, 3) and images.dtype == np.uint8
    assert stored_size("sdxl_turbo", tiny_synth_params, 32) == 32  # null: the dataset's
    assert stored_size("gan", params, 32) == stored_size("ddpm", params, 32) == 32


def test_a_stored_size_above_the_drawn_resolution_is_refused_naming_the_key(tiny_synth_params):
    from synthaug.core.errors import ParamsError
    from synthaug.core.generator_params import SynthesizeParams
    from synthaug.core.param_rules import parse_section

    raw = tiny_synth_params.model_dump()
    raw["sdxl_turbo"]["image_size"] = 128  # resolution 64
    with pytest.raises(ParamsError, match=r"synthesize\.sdxl_turbo.*image_size: 128 is larger than the 64 px"):
        parse_section("synthesize", raw, SynthesizeParams)


def test_preview_grids_show_real_and_larger_generated_images_at_one_size():
    from synthaug.data.storage import ImageSet
    from synthaug.synthetic.shards import preview_grids

    real = ImageSet(np.zeros((4, 4, 4, 3), np.uint8), np.array([0, 0, 1, 1]), NAMES)
    generated = ImageSet(np.full((2, 8, 8, 3), 200, np.uint8), np.zeros(2, np.int64), NAMES)
    grid = preview_grids(real, generated, per_class=2)["cat"]
    # a row of 2 real and one of 2 generated images, all 8 px, 2 px gaps, doubled
    assert grid.shape == (2 * (2 * 8 + 2), 2 * (2 * 8 + 2), 3)
    assert grid[0, 0].tolist() == [0, 0, 0] and grid[2 * 10, 0].tolist() == [200, 200, 200]
