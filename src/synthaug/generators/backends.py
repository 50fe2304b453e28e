"""Which backend turns planned items into images, per generator name, and what a generator folder holds.

`models/generators/<g>/generator.json` is written by train_generator for every generator: the trained
ones (ddpm, gan) keep their weights beside it; pretrained ones (sdxl_turbo) only record that nothing
was trained, and are loaded from the synthesize params.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.core.errors import MissingInput
from synthaug.core.generator_params import SynthesizeParams
from synthaug.core.io import read_json
from synthaug.core.variants import TRAINED_GENERATORS
from synthaug.synthetic.plan import SynthItem

GENERATOR_FILE = "generator.json"

Backend = Callable[[list[SynthItem]], np.ndarray]


def prompt_templates(generator: str, params: SynthesizeParams) -> list[str]:
    """Text-conditioned generators take the templates from params; class-conditioned ones record the class."""
    return params.sdxl_turbo.prompt_templates if generator == "sdxl_turbo" else ["{name}"]


def read_generator_info(folder: Path, class_names: tuple[str, ...]) -> dict[str, Any]:
    path = folder / GENERATOR_FILE
    if not path.is_file():
        raise MissingInput(f"{path}: generator not found (run the train_generator stage first)")
    info = read_json(path)
    if info.get("trained") and tuple(info["class_names"]) != class_names:
        raise ValueError(f"{path}: trained on classes {info['class_names']}, the dataset has {list(class_names)}")
    return info


class TrainedGenerator:
    """Backend for a generator this pipeline trained; the model is loaded on first use (not when resuming)."""

    def __init__(
        self, generator: str, folder: Path, params: SynthesizeParams, class_names: tuple[str, ...], output_size: int
    ) -> None:
        if generator not in TRAINED_GENERATORS:
            raise ValueError(
                f"{generator!r} is not a generator the pipeline trains (allowed: {', '.join(TRAINED_GENERATORS)})"
            )
        self.generator, self.folder, self.params, self.output_size = generator, folder, params, output_size
        self.info = read_generator_info(folder, class_names)
        self._sampler: Callable[[np.ndarray, list[int]], np.ndarray] | None = None

    def _load(self) -> Callable[[np.ndarray, list[int]], np.ndarray]:
        from synthaug.core.devices import resolve_device

        sample_params = getattr(self.params, self.generator)
        device = resolve_device(sample_params.device, f"synthesize.{self.generator}.device")
        if self.generator == "ddpm":
            from synthaug.generators.ddpm import DdpmSampler

            return DdpmSampler.load(self.folder, len(self.info["class_names"]), sample_params, device)
        from synthaug.generators.gan import GanSampler

        return GanSampler.load(self.folder, sample_params, device)

    def __call__(self, items: list[SynthItem]) -> np.ndarray:
        if self._sampler is None:
            self._sampler = self._load()
        labels = np.array([item.class_index for item in items], dtype=np.int64)
        images = self._sampler(labels, [item.seed for item in items])
        if images.shape[1] != self.output_size:
            from synthaug.generators.sdxl_turbo import downscale

            images = downscale(images.astype(np.float32) / 255.0, self.output_size)
        return images


def stored_size(generator: str, params: SynthesizeParams, dataset_size: int) -> int:
    """The size a generator's images are stored at: SDXL-Turbo's synthesize.sdxl_turbo.image_size if set; the
    dataset's otherwise (the trained generators learn at the dataset's size: they have nothing sharper to give)."""
    if generator == "sdxl_turbo" and params.sdxl_turbo.image_size is not None:
        return params.sdxl_turbo.image_size
    return dataset_size


def make_backend(
    generator: str, params: SynthesizeParams, model_dir: Path, real_images: np.ndarray, class_names: tuple[str, ...]
) -> Backend:
    output_size = stored_size(generator, params, real_images.shape[1])
    if generator == "sdxl_turbo":
        from synthaug.generators.sdxl_turbo import LazyGenerator

        read_generator_info(model_dir, class_names)
        return LazyGenerator(params.sdxl_turbo, real_images, output_size)
    return TrainedGenerator(generator, model_dir, params, class_names, output_size)
