"""SDXL-Turbo through diffusers, optionally guided by ControlNet canny edges of real images of the class.

Models load with `from_pretrained` from a hub id or a local folder. fp16 (with the fp16-safe VAE) on
CUDA, fp32 on CPU. Each image has its own torch.Generator seeded from its item, so a batch is the
same images as generating them one by one with the same seeds.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthaug.core.devices import resolve_device
from synthaug.core.errors import ModelLoadError
from synthaug.core.params import SdxlTurboParams
from synthaug.synthetic.plan import SynthItem


def _from_pretrained(loader: Any, source: str, key: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {key}='{source}' ({type(exc).__name__}): not a local folder, and the Hugging Face Hub "
            f"is unreachable or lacks it. Download it where the Hub is reachable "
            f"(huggingface-cli download {source} --local-dir DIR) and set {key}=DIR"
        ) from None


def load_pipeline(params: SdxlTurboParams, device: torch.device) -> Any:
    """The text-to-image (or img2img) SDXL pipeline, with a canny ControlNet when params name one."""
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        StableDiffusionXLControlNetImg2ImgPipeline,
        StableDiffusionXLControlNetPipeline,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLPipeline,
    )

    if not sys.stderr.isatty():  # their loading bars are noise in logs and DVC output
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    components: dict[str, Any] = {}
    if params.controlnet is not None:
        components["controlnet"] = _from_pretrained(
            ControlNetModel, params.controlnet, "synthesize.sdxl_turbo.controlnet", dtype=dtype
        )
    if params.vae is not None and dtype == torch.float16:
        components["vae"] = _from_pretrained(AutoencoderKL, params.vae, "synthesize.sdxl_turbo.vae", dtype=dtype)
    img2img = params.img2img_strength is not None
    pipeline_class: type[Any]
    if params.controlnet is not None:
        pipeline_class = StableDiffusionXLControlNetImg2ImgPipeline if img2img else StableDiffusionXLControlNetPipeline
    else:
        pipeline_class = StableDiffusionXLImg2ImgPipeline if img2img else StableDiffusionXLPipeline
    pipeline = _from_pretrained(pipeline_class, params.model, "synthesize.sdxl_turbo.model", dtype=dtype, **components)
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    if params.attention_slicing:
        pipeline.enable_attention_slicing()
    if params.vae_tiling:
        pipeline.vae.enable_tiling()
    if params.compile:
        pipeline.unet = torch.compile(pipeline.unet, mode="reduce-overhead", fullgraph=True)
    return pipeline


def canny_edges(images: np.ndarray, resolution: int, low: int, high: int) -> list[Image.Image]:
    """controlnet_aux's CannyDetector on each real image upscaled to the generation size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # controlnet_aux warns about optional detectors it does not need here
        from controlnet_aux import CannyDetector

    detector = CannyDetector()
    return [
        detector(
            Image.fromarray(image),
            low_threshold=low,
            high_threshold=high,
            detect_resolution=resolution,
            image_resolution=resolution,
            output_type="pil",
        )
        for image in images
    ]


def upscale(images: np.ndarray, resolution: int) -> list[Image.Image]:
    return [Image.fromarray(image).resize((resolution, resolution), Image.Resampling.BICUBIC) for image in images]


def downscale(images: np.ndarray, size: int) -> np.ndarray:
    """Float [0, 1] (N, R, R, 3) -> uint8 (N, size, size, 3) with antialiasing (Lanczos)."""
    pixels = (np.clip(images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.LANCZOS)) for p in pixels])


class SdxlTurboGenerator:
    """Callable backend: planned items -> uint8 images at the dataset's resolution."""

    def __init__(
        self, params: SdxlTurboParams, real_images: np.ndarray, output_size: int, device: torch.device
    ) -> None:
        self.params = params
        self.real_images = real_images  # the fetched train split; items point into it by source_index
        self.output_size = output_size
        self.device = device
        self.pipeline = load_pipeline(params, device)

    def __call__(self, items: list[SynthItem]) -> np.ndarray:
        batches = [items[i : i + self.params.batch_size] for i in range(0, len(items), self.params.batch_size)]
        return np.concatenate([self._generate(batch) for batch in batches])

    def _generate(self, items: list[SynthItem]) -> np.ndarray:
        params = self.params
        sources = self.real_images[[item.source_index for item in items]]
        kwargs: dict[str, Any] = {
            "prompt": [item.prompt for item in items],
            "num_inference_steps": params.steps,
            "guidance_scale": params.guidance_scale,
            "height": params.resolution,
            "width": params.resolution,
            "output_type": "np",
            "generator": [torch.Generator("cpu").manual_seed(item.seed) for item in items],
        }
        if params.controlnet is not None:
            edges = canny_edges(sources, params.resolution, params.canny_low, params.canny_high)
            kwargs["controlnet_conditioning_scale"] = params.controlnet_conditioning_scale
            kwargs["control_image" if params.img2img_strength is not None else "image"] = edges
        if params.img2img_strength is not None:
            kwargs["image"] = upscale(sources, params.resolution)
            kwargs["strength"] = params.img2img_strength
        with torch.inference_mode():
            images = self.pipeline(**kwargs).images
        return downscale(np.asarray(images), self.output_size)


class LazyGenerator:
    """Builds the SdxlTurboGenerator on first use, so a fully resumed run never loads the pipeline."""

    def __init__(self, params: SdxlTurboParams, real_images: np.ndarray, output_size: int) -> None:
        self.params, self.real_images, self.output_size = params, real_images, output_size
        self._generator: SdxlTurboGenerator | None = None

    def __call__(self, items: list[SynthItem]) -> np.ndarray:
        if self._generator is None:
            device = resolve_device(self.params.device, "synthesize.sdxl_turbo.device")
            self._generator = SdxlTurboGenerator(self.params, self.real_images, self.output_size, device)
        return self._generator(items)
