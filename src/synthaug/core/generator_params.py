"""Typed sections of params.yaml for the generators: train_generator and synthesize."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from synthaug.core.params import (
    BelowOne,
    Device,
    DiffAugmentation,
    Fraction,
    GanLoss,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Section,
)


class SdxlTurboParams(Section):
    model: str
    model_revision: str | None
    controlnet: str | None
    controlnet_revision: str | None
    vae: str | None
    vae_revision: str | None
    resolution: PositiveInt
    image_size: PositiveInt | None
    steps: Annotated[int, Field(ge=1, le=4)]
    guidance_scale: NonNegativeFloat
    controlnet_conditioning_scale: NonNegativeFloat
    canny_low: Annotated[int, Field(ge=0, le=255)]
    canny_high: Annotated[int, Field(ge=0, le=255)]
    img2img_strength: Fraction | None
    prompt_templates: Annotated[list[str], Field(min_length=1)]
    batch_size: PositiveInt
    device: Device
    compile: bool
    compile_vae: bool
    channels_last: bool
    fuse_qkv: bool
    vae_slicing: bool
    model_cpu_offload: bool

    @model_validator(mode="after")
    def _drawable(self) -> SdxlTurboParams:
        if self.image_size is not None and self.image_size > self.resolution:
            raise ValueError(
                f"image_size: {self.image_size} is larger than the {self.resolution} px the images are drawn at "
                "(resolution): upsampling adds no detail"
            )
        if self.resolution % 64:
            raise ValueError(f"resolution: {self.resolution} is not a multiple of 64 (the canny detector's grid)")
        if self.canny_low >= self.canny_high:
            raise ValueError(f"canny_low: {self.canny_low} must be below canny_high ({self.canny_high})")
        if self.img2img_strength is not None and self.steps * self.img2img_strength < 1:
            raise ValueError(
                f"steps * img2img_strength = {self.steps} * {self.img2img_strength:g} is below 1: img2img would "
                "run no denoising step"
            )
        if self.model_cpu_offload and self.device == "cpu":
            raise ValueError("model_cpu_offload: true needs a GPU (device auto or cuda), not device: cpu")
        return self


class DdpmSampleParams(Section):
    sampler: Literal["ddim", "dpm_solver"]
    steps: PositiveInt
    guidance_scale: NonNegativeFloat
    batch_size: PositiveInt
    device: Device


class GanSampleParams(Section):
    batch_size: PositiveInt
    device: Device


class SynthesizeParams(Section):
    seed: int
    target_count: PositiveInt | None
    target_ratio: PositiveFloat
    eval_per_class: PositiveInt | None
    shard_size: PositiveInt
    preview_per_class: PositiveInt
    sdxl_turbo: SdxlTurboParams
    ddpm: DdpmSampleParams
    gan: GanSampleParams


class DdpmTrainParams(Section):
    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    warmup_steps: NonNegativeInt
    grad_clip: PositiveFloat
    ema_decay: BelowOne
    num_train_timesteps: PositiveInt
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
    prediction_type: Literal["epsilon", "v_prediction"]
    block_out_channels: Annotated[list[PositiveInt], Field(min_length=2)]
    layers_per_block: PositiveInt
    attention: bool
    class_dropout: BelowOne
    mixed_precision: Literal["no", "bf16", "fp16"]
    preview_steps: PositiveInt


class GanTrainParams(Section):
    steps: PositiveInt
    batch_size: PositiveInt
    latent_dim: PositiveInt
    base_channels: PositiveInt
    generator_block: Literal["transposed", "upsample", "csp"]
    discriminator_conditioning: Literal["projection", "embedding"]
    spectral_norm: bool
    lr_generator: PositiveFloat
    lr_discriminator: PositiveFloat
    weight_decay_generator: NonNegativeFloat
    weight_decay_discriminator: NonNegativeFloat
    beta1: BelowOne
    beta2: BelowOne
    loss: GanLoss
    label_smoothing: Annotated[float, Strict(False), Field(gt=0.5, le=1.0)]
    diff_augment: list[DiffAugmentation]
    conditioning_start: NonNegativeInt
    conditioning_steps: NonNegativeInt
    lecam_weight: NonNegativeFloat
    mode_seeking_weight: NonNegativeFloat

    @model_validator(mode="after")
    def _conditioned_by_the_end(self) -> GanTrainParams:
        if self.conditioning_start + self.conditioning_steps > self.steps:
            raise ValueError(
                f"conditioning_start + conditioning_steps ({self.conditioning_start} + {self.conditioning_steps}) "
                f"exceeds steps ({self.steps}): the generator must end fully conditional"
            )
        if len(set(self.diff_augment)) != len(self.diff_augment):
            raise ValueError(f"diff_augment: duplicate entries in {self.diff_augment}")
        return self

    @model_validator(mode="after")
    def _smoothing_needs_bce(self) -> GanTrainParams:
        if self.loss == "hinge" and self.label_smoothing != 1.0:
            raise ValueError(
                f"label_smoothing: {self.label_smoothing} smooths the bce loss's targets; the hinge loss has none "
                "(set it to 1.0 with loss: hinge)"
            )
        return self


class PretrainedGeneratorParams(Section):
    """A generator loaded with its weights (its synthesize subsection names them): nothing to train."""

    pretrained: Literal[True]


class TrainGeneratorParams(Section):
    seed: int
    device: Device
    run_processes: PositiveInt  # generator runs trained at once on the CPU, a worker process each
    balanced_sampling: bool
    horizontal_flip: bool
    log_every: PositiveInt
    checkpoint_every: PositiveInt
    sample_every: PositiveInt
    samples_per_class: PositiveInt
    # One subsection per generator, so each train_generator entry depends on its own (see dvc.yaml).
    sdxl_turbo: PretrainedGeneratorParams
    ddpm: DdpmTrainParams
    gan: GanTrainParams
