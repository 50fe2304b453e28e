"""Typed, validated sections of params.yaml: one model per pipeline stage.

Every field is required (params.yaml is the single source of defaults) and unknown keys
are rejected, so a typo fails before any work with a message that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from synthaug.errors import ParamsError

PARAMS_FILE = "params.yaml"

# YAML writes 1e-4 as a string under YAML 1.1 resolvers (PyYAML); accept numeric strings for floats only.
Float = Annotated[float, Strict(False)]
Fraction = Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]
Probability = Annotated[float, Strict(False), Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]

CLASSIFIERS = ("vit", "cnn", "timm")
BASE_VARIANTS = ("baseline", "oversampled", "full")
# Trained on the baseline's imbalanced set with another loss (synthaug.train.losses).
LOSS_VARIANTS = ("class_weighted", "logit_adjusted", "label_smoothed")
GENERATORS = ("sdxl_turbo", "ddpm", "gan")
TRAINED_GENERATORS = ("ddpm", "gan")  # trained by the pipeline; sdxl_turbo is loaded pretrained
Device = Literal["auto", "cpu", "cuda"]
# The reference augmentations in groups (synthaug.data.augment); the reference study trained without occlusion.
AUGMENTATION_STAGES = ("geometry", "color", "blur_noise", "occlusion")
# torch: batched on the training device (synthaug.data.batch_augment); albumentations: the reference study's, per image.
AUGMENTATION_ENGINES = ("torch", "albumentations")
PositiveFloat = Annotated[float, Strict(False), Field(gt=0.0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FetchParams(Section):
    archive: str | None  # local archive or folder; None downloads through torchvision
    download_dir: str  # torchvision download cache, used only when archive is None
    image_size: PositiveInt  # stored resolution (square); other sizes are resized


class ImbalanceParams(Section):
    seed: int
    shape: Literal["linear", "exponential", "explicit"]
    min_fraction: Fraction  # linear: class 0 keeps this, the last class keeps 1.0
    imbalance_factor: Annotated[float, Strict(False), Field(ge=1.0)]  # exponential: n_max / n_min
    fractions: list[Fraction] | None  # explicit: one keep fraction per class
    val_per_class: PositiveInt  # balanced validation split held out from train
    subset_per_class: PositiveInt | None  # demo: cap train images per class before splitting


class VitParams(Section):
    patch_size: PositiveInt
    hidden_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    intermediate_size: PositiveInt
    dropout: Probability


class CnnParams(Section):
    channels: list[PositiveInt]
    dropout: Probability


class TimmParams(Section):
    name: str
    pretrained: bool  # ImageNet weights from the Hugging Face Hub (or its local cache)
    linear_probe: bool  # freeze the backbone, train the classification head only


# Classifiers that may judge synthetic images: trained on the imbalanced set only. `full` saw the images the
# imbalance removed, so as a judge it would pass their knowledge to the synthetic variants.
FILTER_JUDGES = ("oversampled", "baseline", *LOSS_VARIANTS)


class SyntheticFilterParams(Section):
    """Drop synthetic images a real-data classifier (the judge) puts in another class or doubts."""

    enabled: bool
    min_confidence: Probability  # softmax probability of the intended class
    judge: str  # the variant whose classifier (same classifier and seed) judges; see FILTER_JUDGES

    @field_validator("judge")
    @classmethod
    def _fair_judge(cls, judge: str) -> str:
        if judge == "full":
            raise ValueError(
                "'full' trained on the images the imbalance removed, so it cannot judge fairly; "
                f"use one of {', '.join(FILTER_JUDGES)}"
            )
        if judge not in FILTER_JUDGES:
            raise ValueError(f"unknown judge {judge!r} (allowed: {', '.join(FILTER_JUDGES)})")
        return judge


class LossBaselineParams(Section):
    """Settings of the loss-side baselines (variants class_weighted, logit_adjusted, label_smoothed)."""

    logit_adjustment_tau: PositiveFloat  # logits + tau * log(class prior) in the loss
    label_smoothing: Annotated[float, Strict(False), Field(gt=0.0, lt=1.0)]  # the label_smoothed variant's


class TrainParams(Section):
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Strict(False), Field(gt=0.0)]
    weight_decay: Annotated[float, Strict(False), Field(ge=0.0)]
    schedule: Literal["linear", "cosine", "constant"]
    lr_end_factor: Annotated[float, Strict(False), Field(ge=0.0, le=1.0)]  # final lr / initial lr
    label_smoothing: Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]
    augment_p: Probability  # p_aug: probability of each augmentation in augment_stages
    augment_stages: Annotated[list[Literal[AUGMENTATION_STAGES]], Field(min_length=1)]
    augment_engine: Literal[AUGMENTATION_ENGINES]  # same distribution; torch is batched and runs on the GPU
    image_size: PositiveInt  # model input resolution; batches are resized on the fly
    eval_batch_size: PositiveInt
    device: Device  # auto: CUDA when present (under torchrun, each rank's own GPU)
    synthetic_filter: SyntheticFilterParams
    loss_baselines: LossBaselineParams
    vit: VitParams
    cnn: CnnParams
    timm: TimmParams


class SdxlTurboParams(Section):
    model: str  # hub id or local folder of an SDXL(-Turbo) pipeline
    controlnet: str | None  # hub id or local folder of an SDXL ControlNet (canny); None = text-to-image
    vae: str | None  # fp16-safe VAE loaded on CUDA (fp16); None keeps the pipeline's own VAE
    resolution: PositiveInt  # generation size, pixels; outputs are resized to the dataset's
    steps: Annotated[int, Field(ge=1, le=4)]
    guidance_scale: Annotated[float, Strict(False), Field(ge=0.0)]  # 0 for turbo
    controlnet_conditioning_scale: Annotated[float, Strict(False), Field(ge=0.0)]
    canny_low: Annotated[int, Field(ge=0, le=255)]
    canny_high: Annotated[int, Field(ge=0, le=255)]
    img2img_strength: Annotated[float, Strict(False), Field(gt=0.0, le=1.0)] | None  # None = from noise
    prompt_templates: Annotated[list[str], Field(min_length=1)]  # "{name}" is the class name
    batch_size: PositiveInt
    device: Literal["auto", "cpu", "cuda"]
    compile: bool  # torch.compile the UNet (CUDA)
    attention_slicing: bool  # lower peak memory on small GPUs
    vae_tiling: bool


class DdpmSampleParams(Section):
    sampler: Literal["ddim", "dpm_solver"]
    steps: PositiveInt
    guidance_scale: Annotated[float, Strict(False), Field(ge=0.0)]  # 1 = conditional only; >1 classifier-free guidance
    batch_size: PositiveInt
    device: Device


class GanSampleParams(Section):
    batch_size: PositiveInt
    device: Device


class SynthesizeParams(Section):
    seed: int
    target_count: PositiveInt | None  # per-class target; None = the largest class's count
    target_ratio: Annotated[float, Strict(False), Field(gt=0.0)]
    eval_per_class: PositiveInt | None  # images per class for FID/KID; None = the test set's count per class
    shard_size: PositiveInt  # images per resumable shard
    preview_per_class: PositiveInt
    sdxl_turbo: SdxlTurboParams
    ddpm: DdpmSampleParams
    gan: GanSampleParams


class DdpmTrainParams(Section):
    steps: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: Annotated[float, Strict(False), Field(ge=0.0)]
    warmup_steps: Annotated[int, Field(ge=0)]
    grad_clip: PositiveFloat  # max gradient norm
    ema_decay: Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]
    num_train_timesteps: PositiveInt
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
    prediction_type: Literal["epsilon", "v_prediction"]  # v is better behaved at high noise early in training
    block_out_channels: Annotated[list[PositiveInt], Field(min_length=2)]
    layers_per_block: PositiveInt
    attention: bool  # self-attention at the lowest resolution
    class_dropout: Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]  # label -> null class, for guidance
    mixed_precision: Literal["no", "bf16", "fp16"]  # CUDA autocast; CPU always trains in fp32
    preview_steps: PositiveInt  # DDIM steps of the sample grids drawn during training


class GanTrainParams(Section):
    steps: PositiveInt
    batch_size: PositiveInt
    latent_dim: PositiveInt
    base_channels: PositiveInt
    generator_block: Literal["transposed", "upsample", "csp"]
    discriminator_conditioning: Literal["projection", "embedding"]
    spectral_norm: bool  # SNGAN discriminator (no BatchNorm in D)
    lr_generator: PositiveFloat
    lr_discriminator: PositiveFloat
    beta1: Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]
    beta2: Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]
    label_smoothing: Annotated[float, Strict(False), Field(gt=0.5, le=1.0)]  # target for real images (one-sided)


class PretrainedGeneratorParams(Section):
    """A generator loaded with its weights (its synthesize subsection names them): nothing to train."""

    pretrained: Literal[True]


class TrainGeneratorParams(Section):
    seed: int
    device: Device
    balanced_sampling: bool  # draw classes uniformly, so minority classes are learned as often as the rest
    horizontal_flip: bool
    log_every: PositiveInt  # steps between loss-curve points
    checkpoint_every: PositiveInt  # steps between resumable checkpoints
    sample_every: PositiveInt  # steps between sample grids (MLflow artifacts)
    samples_per_class: PositiveInt
    # One subsection per generator, so each train_generator entry depends on its own (see dvc.yaml).
    sdxl_turbo: PretrainedGeneratorParams
    ddpm: DdpmTrainParams
    gan: GanTrainParams


class FidParams(Section):
    feature_extractor: Literal["auto", "inception", "classifier"]  # auto: Inception when its weights can be had
    inception_weights: str | None  # pytorch-fid's pt_inception-2015-12-05 .pth; None = the torch hub cache
    inception_url: str | None  # fetched into the torch hub cache when it lacks the weights; None = never fetch
    dims: Literal[64, 192, 768, 2048]  # pytorch-fid's --dims: Inception block; FID needs more images than dims
    kid_subsets: PositiveInt
    kid_subset_size: PositiveInt  # capped at the smaller set's size
    precision_recall_k: Annotated[int, Field(ge=0)]  # k-NN manifold precision/recall; 0 = off
    batch_size: PositiveInt
    device: Device


class SearchRange(Section):
    """A float train key searched in [low, high], log-uniformly with `log`."""

    low: Float
    high: Float
    log: bool

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log needs low > 0 (got {self.low})")
        return self


# Train keys the search may set; each is either a range or a list of choices.
SEARCHABLE_KEYS = ("lr", "weight_decay", "batch_size", "label_smoothing", "augment_p", "epochs", "lr_end_factor")


class PrunerParams(Section):
    startup_trials: Annotated[int, Field(ge=0)]  # trials that always run to the end before any is pruned
    warmup_epochs: Annotated[int, Field(ge=0)]  # epochs a trial always runs before it can be pruned


class HpoParams(Section):
    """`synthaug hpo`: an Optuna study over train keys for one (classifier, variant), on validation macro-F1."""

    study: Annotated[str, Field(min_length=1)]  # study name in the sqlite storage; rerunning continues it
    classifier: Literal[CLASSIFIERS]
    variant: Literal[BASE_VARIANTS + LOSS_VARIANTS]
    seed: int  # training seed of every trial (trials differ by their params only)
    sampler_seed: int  # TPE sampler
    trials: PositiveInt  # finished trials the study should have; a rerun adds only the missing ones
    pruner: PrunerParams
    space: dict[str, SearchRange | Annotated[list[int | Float], Field(min_length=1)]]

    @model_validator(mode="after")
    def _searchable(self) -> HpoParams:
        unknown = sorted(set(self.space) - set(SEARCHABLE_KEYS))
        if unknown:
            raise ValueError(f"hpo.space: cannot search {unknown} (allowed: {', '.join(SEARCHABLE_KEYS)})")
        if not self.space:
            raise ValueError("hpo.space: empty; give at least one train key to search")
        return self


class ProfileModelParams(Section):
    """Cost of each classifier in experiment.classifiers (stage `profile_model`), on `device`."""

    batch_size: PositiveInt  # images per pass for throughput, peak memory and the trace
    warmup: Annotated[int, Field(ge=0)]  # untimed passes first
    repeats: PositiveInt  # timed passes; the median is reported
    steps: Annotated[int, Field(ge=0)]  # training steps in a torch.profiler chrome trace; 0 = no trace
    device: Device


class TrackingParams(Section):
    """How stages treat the MLflow store; read by every stage, decides no output (so no DVC dependency)."""

    strict: bool  # true: a failing store fails the stage; false: warn once and keep the DVC outputs


class ExperimentParams(Section):
    """The matrix dvc.yaml expands: which classifiers, data variants and seeds to train."""

    preset: str  # the Hydra preset's name (conf/preset/*.yaml), shown by dvc exp show
    classifiers: Annotated[list[Literal["vit", "cnn", "timm"]], Field(min_length=1)]
    variants: Annotated[
        list[Literal["baseline", "oversampled", "full", "class_weighted", "logit_adjusted", "label_smoothed"]],
        Field(min_length=1),
    ]
    seeds: Annotated[list[int], Field(min_length=1)]
    # Each adds train_generator/synthesize/fid entries and a synthetic_<g> variant; the report needs one at least.
    generators: Annotated[list[Literal["sdxl_turbo", "ddpm", "gan"]], Field(min_length=1)]

    @model_validator(mode="after")
    def _generators_need_features(self) -> ExperimentParams:
        if len(set(self.generators)) != len(self.generators):
            raise ValueError("experiment.generators: duplicate entries")
        if self.generators and "full" not in self.variants:
            raise ValueError(
                "experiment.variants: must include 'full' when experiment.generators is not empty "
                "(the fid stage uses the full-data classifier)"
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    "fetch": FetchParams,
    "imbalance": ImbalanceParams,
    "train_generator": TrainGeneratorParams,
    "synthesize": SynthesizeParams,
    "train": TrainParams,
    "fid": FidParams,
    "profile_model": ProfileModelParams,
    "hpo": HpoParams,
    "experiment": ExperimentParams,
    "tracking": TrackingParams,
}

S = TypeVar("S", bound=Section)


def _describe(error: dict[str, Any], section: str, model: type[Section]) -> str:
    key = ".".join([section, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (allowed: {', '.join(_allowed_keys(model, error['loc'][:-1]))})"
    if error["type"] == "value_error" and not error["loc"]:  # a cross-field rule: its message names the keys
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {str(error['msg']).removeprefix('Value error, ')} (got {error.get('input')!r})"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def parse_section(name: str, raw: Any, model: type[S]) -> S:
    """Validate one section's raw dict into its typed model, or raise ParamsError naming the key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: expected a mapping, got {raw!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, name, model) for e in exc.errors())
        raise ParamsError(f"{PARAMS_FILE}: {problems}") from None


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found (run from the repository root)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return data


def load_section(name: str, model: type[S], path: str | Path = PARAMS_FILE) -> S:
    """Read and validate one top-level section of params.yaml."""
    data = load_params(path)
    if name not in data:
        raise ParamsError(f"{path}: missing section '{name}'")
    return parse_section(name, data[name], model)


def validate_all(data: dict[str, Any]) -> dict[str, Section]:
    """Validate every known section; unknown top-level sections are an error too."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{PARAMS_FILE}: unknown section(s) {unknown} (allowed: {', '.join(SECTIONS)})")
    missing = sorted(set(SECTIONS) - set(data))
    if missing:
        raise ParamsError(f"{PARAMS_FILE}: missing section(s) {missing}")
    sections = {name: parse_section(name, data[name], model) for name, model in SECTIONS.items()}
    judge, variants = sections["train"].synthetic_filter.judge, sections["experiment"].variants
    if judge not in variants:
        raise ParamsError(
            f"{PARAMS_FILE}: train.synthetic_filter.judge: {judge!r} is not in experiment.variants {variants}; "
            "the pipeline must train the judge (add it there, or pick one of them)"
        )
    return sections


def compose_params(conf_dir: str | Path = "conf", overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ exactly as `dvc exp run` does (Hydra compose API) into a params.yaml dict."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        config = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(config, resolve=True)
