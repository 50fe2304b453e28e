"""SDXL-Turbo through diffusers, optionally guided by ControlNet canny edges of real images of the class.

Weights load as diffusers documents it: safetensors only, the fp16 variant where the folder has one (cast up to
fp32 on a CPU), no watermarker. A process loads each configuration once (the generator runs of a stage share
it) and encodes each prompt once. Each image has its own torch.Generator seeded from its item, so a batch is the
same images as generating them one by one with the same seeds.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthaug.core.devices import resolve_device
from synthaug.core.errors import BrokenImages, ModelLoadError
from synthaug.core.generator_params import SdxlTurboParams
from synthaug.generators.weights import Weights, resolve_weights
from synthaug.synthetic.plan import SynthItem

KEY = "synthesize.sdxl_turbo"
# Above this many UNet parameters a model is full-size SDXL: minutes an image on a CPU.
CPU_UNET_PARAMETER_LIMIT = 100_000_000


@dataclass
class LoadedPipeline:
    """A diffusers pipeline on its device, the weights it came from, and the prompts encoded so far."""

    pipeline: Any
    weights: dict[str, Weights]
    device: torch.device
    embeddings: dict[tuple[str, bool], tuple[torch.Tensor, ...]] = field(default_factory=dict)

    def provenance(self) -> dict[str, dict[str, str | None]]:
        return {role: weights.provenance() for role, weights in self.weights.items()}


def model_weights(params: SdxlTurboParams) -> dict[str, Weights]:
    """The folders of the configured models (fetched from the Hub where needed), by role."""
    sources = {
        "model": (params.model, params.model_revision),
        "controlnet": (params.controlnet, params.controlnet_revision),
        "vae": (params.vae, params.vae_revision),
    }
    return {
        role: resolve_weights(source, revision, f"{KEY}.{role}")
        for role, (source, revision) in sources.items()
        if source is not None
    }


def unet_parameters(model: Weights) -> int:
    """The UNet's parameter count from its config alone (built on the meta device: no memory, no weights)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    config = UNet2DConditionModel.load_config(model.folder / "unet")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return sum(p.numel() for p in unet.parameters())


def pick_device(params: SdxlTurboParams, model: Weights) -> torch.device:
    """params.device resolved; `auto` refuses to fall back to the CPU with a full-size model."""
    device = resolve_device(params.device, f"{KEY}.device")
    if params.device == "auto" and device.type == "cpu":
        count = unet_parameters(model)
        if count > CPU_UNET_PARAMETER_LIMIT:
            raise ModelLoadError(
                f"{KEY}.device=auto found no CUDA device, and {KEY}.model's UNet has {count / 1e9:.1f} B parameters: "
                f"minutes an image on a CPU. Run on a GPU, or set {KEY}.device=cpu to run on the CPU on purpose"
            )
    return device


def _from_pretrained(loader: Any, weights: Weights, key: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(weights.folder, variant=weights.variant, use_safetensors=True, **kwargs)
    except Exception as exc:
        cause = (str(exc).splitlines() or [""])[0]
        raise ModelLoadError(
            f"cannot load {key}={weights.source} from {weights.folder}: {type(exc).__name__}: {cause}"
        ) from exc


def load_pipeline(params: SdxlTurboParams, device: torch.device, weights: dict[str, Weights] | None = None) -> Any:
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
    weights = model_weights(params) if weights is None else weights
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    components: dict[str, Any] = {}
    if "controlnet" in weights:
        controlnet = weights["controlnet"]
        components["controlnet"] = _from_pretrained(ControlNetModel, controlnet, f"{KEY}.controlnet", dtype=dtype)
    if "vae" in weights and dtype == torch.float16:
        components["vae"] = _from_pretrained(AutoencoderKL, weights["vae"], f"{KEY}.vae", dtype=dtype)
    img2img = params.img2img_strength is not None
    pipeline_class: type[Any]
    if "controlnet" in weights:
        pipeline_class = StableDiffusionXLControlNetImg2ImgPipeline if img2img else StableDiffusionXLControlNetPipeline
    else:
        pipeline_class = StableDiffusionXLImg2ImgPipeline if img2img else StableDiffusionXLPipeline
    pipeline = _from_pretrained(
        pipeline_class, weights["model"], f"{KEY}.model", dtype=dtype, add_watermarker=False, **components
    )
    if params.model_cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    apply_speedups(pipeline, params)
    return pipeline


def apply_speedups(pipeline: Any, params: SdxlTurboParams) -> None:
    """The options params switch on, in diffusers' documented order: memory format, fused QKV, compilation."""
    if params.vae_slicing:
        pipeline.vae.enable_slicing()
    if params.channels_last:
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    if params.fuse_qkv:
        pipeline.fuse_qkv_projections()
    if params.compile:
        pipeline.unet = torch.compile(pipeline.unet, mode="reduce-overhead", fullgraph=True)
    if params.compile_vae:
        pipeline.vae.decode = torch.compile(pipeline.vae.decode, mode="reduce-overhead", fullgraph=True)


@functools.lru_cache(maxsize=1)
def _cached_pipeline(params_json: str, device: str) -> LoadedPipeline:
    params = SdxlTurboParams.model_validate_json(params_json)
    weights = model_weights(params)
    return LoadedPipeline(load_pipeline(params, torch.device(device), weights), weights, torch.device(device))


def shared_pipeline(params: SdxlTurboParams, device: torch.device) -> LoadedPipeline:
    """The pipeline for these params, loaded once per process: every generator run of a stage draws from it."""
    loading = params.model_copy(update={"batch_size": 1, "prompt_templates": ["-"]})  # neither changes the load
    return _cached_pipeline(loading.model_dump_json(), str(device))


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


def check_images(images: np.ndarray, items: list[SynthItem]) -> None:
    """Non-finite or constant images are a broken model or dtype, never training data: fail, naming the classes."""
    flat = images.reshape(len(images), -1)
    finite = np.isfinite(flat).all(axis=1)
    constant = finite & (flat.max(axis=1) == flat.min(axis=1))
    problems = []
    for label, broken in (("non-finite (NaN or inf)", ~finite), ("constant", constant)):
        counts = Counter(item.class_name for item, bad in zip(items, broken) if bad)
        problems += [f"{n} image(s) of class {name} are {label}" for name, n in sorted(counts.items())]
    if problems:
        hint = " (in fp16, the SDXL VAE overflows to NaN: keep the fp16-fix VAE)" if not finite.all() else ""
        raise BrokenImages(f"{'; '.join(problems)}, in a batch of {len(items)}{hint}")


class SdxlTurboGenerator:
    """Callable backend: planned items -> uint8 images at the dataset's resolution."""

    def __init__(
        self, params: SdxlTurboParams, real_images: np.ndarray, output_size: int, device: torch.device
    ) -> None:
        self.params = params
        self.real_images = real_images  # the fetched train split; items point into it by source_index
        self.output_size = output_size
        self.loaded = shared_pipeline(params, device)
        self.device = self.loaded.device

    @property
    def pipeline(self) -> Any:
        return self.loaded.pipeline

    def __call__(self, items: list[SynthItem]) -> np.ndarray:
        size = self.params.batch_size
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        return np.concatenate([self._generate(batch) for batch in batches])

    def _generate(self, items: list[SynthItem]) -> np.ndarray:
        count = len(items)
        if self.params.compile or self.params.compile_vae:  # a new batch shape would compile again
            items = items + [items[-1]] * (self.params.batch_size - count)
        images = self._draw(items)[:count]
        check_images(images, items[:count])
        return downscale(images, self.output_size)

    def _prompt_embeddings(self, prompts: list[str], guided: bool) -> dict[str, torch.Tensor]:
        """What the pipeline would encode from `prompts`, each prompt encoded once per process."""
        cache = self.loaded.embeddings
        for prompt in dict.fromkeys(prompts):
            if (prompt, guided) not in cache:
                with torch.inference_mode():
                    cache[(prompt, guided)] = self.pipeline.encode_prompt(
                        prompt=prompt,
                        device=self.pipeline._execution_device,
                        num_images_per_prompt=1,
                        do_classifier_free_guidance=guided,
                    )
        encoded = [cache[(prompt, guided)] for prompt in prompts]
        names = ["prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"]
        return {
            name: torch.cat([e[i] for e in encoded])
            for i, name in enumerate(names)
            if guided or not name.startswith("negative")
        }

    def _draw(self, items: list[SynthItem]) -> np.ndarray:
        params = self.params
        sources = self.real_images[[item.source_index for item in items]]
        guided = params.guidance_scale > 1 and self.pipeline.unet.config.time_cond_proj_dim is None
        kwargs: dict[str, Any] = {
            **self._prompt_embeddings([item.prompt for item in items], guided),
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
            return np.asarray(self.pipeline(**kwargs).images)


class LazyGenerator:
    """Builds the SdxlTurboGenerator on first use, so a fully resumed run never loads the pipeline."""

    def __init__(self, params: SdxlTurboParams, real_images: np.ndarray, output_size: int) -> None:
        self.params, self.real_images, self.output_size = params, real_images, output_size
        self._generator: SdxlTurboGenerator | None = None

    @property
    def loaded(self) -> LoadedPipeline | None:
        return None if self._generator is None else self._generator.loaded

    def __call__(self, items: list[SynthItem]) -> np.ndarray:
        if self._generator is None:
            device = pick_device(self.params, model_weights(self.params)["model"])
            self._generator = SdxlTurboGenerator(self.params, self.real_images, self.output_size, device)
        return self._generator(items)
