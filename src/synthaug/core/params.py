"""Typed, validated sections of params.yaml: one model per pipeline stage.

Every field is required and unknown keys are rejected, so a typo fails before any work with a message that
names the key. Each key is spelled, defaulted and explained once, in conf/config.yaml (params.yaml is composed
from it); this module holds only each key's type and the rules between keys. Every closed set of names is one
Literal type below, and the tuples the code iterates over are read from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from synthaug.core.errors import ParamsError
from synthaug.core.io import redact_url, write_text

PARAMS_FILE = "params.yaml"
# This clone's own settings: git-ignored, composed after the preset (conf/config.yaml's `optional local`), so a
# value set once (the CIFAR-10 archive `make demo ARCHIVE=...` names) holds for every later `dvc exp run`.
LOCAL_SETTINGS = Path("local/settings.yaml")  # under conf/

# YAML writes 1e-4 as a string under YAML 1.1 resolvers (PyYAML); accept numeric strings for floats only.
Float = Annotated[float, Strict(False)]
PositiveFloat = Annotated[float, Strict(False), Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Strict(False), Field(ge=0.0)]
Fraction = Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]  # a share that cannot be zero
Probability = Annotated[float, Strict(False), Field(ge=0.0, le=1.0)]
BelowOne = Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]  # decays, smoothing, Adam betas
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]

Classifier = Literal["vit", "cnn", "timm"]
BaseVariant = Literal["baseline", "oversampled", "full"]
LossVariant = Literal["class_weighted", "logit_adjusted", "label_smoothed"]  # the imbalanced set, another loss
Variant = Literal[BaseVariant, LossVariant]
Generator = Literal["sdxl_turbo", "ddpm", "gan"]
TrainedGenerator = Literal["ddpm", "gan"]  # trained by the pipeline; sdxl_turbo is loaded pretrained
Device = Literal["auto", "cpu", "cuda"]
AugmentationStage = Literal["crop", "geometry", "color", "blur_noise", "occlusion"]  # groups of synthaug.data.augment
AugmentationEngine = Literal["torch", "albumentations"]
ImbalanceShape = Literal["linear", "exponential", "explicit"]
ValidationSource = Literal["pool", "removed"]
GanLoss = Literal["bce", "hinge"]  # hinge: the SNGAN loss (Miyato et al. 2018)
DiffAugmentation = Literal["color", "translation", "cutout"]  # DiffAugment's policy (Zhao et al. 2020)

CLASSIFIERS = get_args(Classifier)
BASE_VARIANTS = get_args(BaseVariant)
LOSS_VARIANTS = get_args(LossVariant)
COMPOSED_SEPARATOR = "+"  # synthetic_<generator>+<loss variant>: both remedies at once (experiment.composed)
GENERATORS = get_args(Generator)
TRAINED_GENERATORS = get_args(TrainedGenerator)
AUGMENTATION_STAGES = get_args(AugmentationStage)
AUGMENTATION_ENGINES = get_args(AugmentationEngine)


# The variants built on a generator's images, <prefix><generator>: synthetic_<g> adds them to the imbalanced set,
# synthetic_only_<g> trains on them alone (the Classification Accuracy Score), real_equal_<g> on as many real images
# per class as synthetic_only_<g> has, so CAS is set beside a real set of the same size (Ravuri & Vinyals 2019).
SYNTHETIC_PREFIX = "synthetic_"
SYNTHETIC_ONLY_PREFIX = "synthetic_only_"
REAL_EQUAL_PREFIX = "real_equal_"


def generator_variant(prefix: str, generator: str) -> str:
    """The variant <prefix><generator> (prefix: SYNTHETIC_PREFIX, SYNTHETIC_ONLY_PREFIX or REAL_EQUAL_PREFIX)."""
    return f"{prefix}{generator}"


def composed_variant(generator: str, remedy: str) -> str:
    """The variant that adds `generator`'s images to the imbalanced set and trains with loss variant `remedy`."""
    return f"{generator_variant(SYNTHETIC_PREFIX, generator)}{COMPOSED_SEPARATOR}{remedy}"


def added_generator(variant: str) -> str | None:
    """The generator whose images a synthetic_<g> variant (or a composed synthetic_<g>+<loss variant>) adds to the
    real ones; None for every other variant, synthetic_only_<g> included."""
    if variant.startswith(SYNTHETIC_PREFIX) and not variant.startswith(SYNTHETIC_ONLY_PREFIX):
        return variant.removeprefix(SYNTHETIC_PREFIX).split(COMPOSED_SEPARATOR)[0]
    return None


def loss_variant_of(variant: str) -> str:
    """The variant whose loss `variant` trains with: its remedy when composed, itself otherwise."""
    return variant.rsplit(COMPOSED_SEPARATOR, 1)[-1]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FetchParams(Section):
    archive: str | None
    download_dir: str
    image_size: PositiveInt


class ImbalanceParams(Section):
    seed: int
    shape: ImbalanceShape
    min_fraction: Fraction
    imbalance_factor: Annotated[float, Strict(False), Field(ge=1.0)]
    fractions: list[Fraction] | None
    val_per_class: PositiveInt
    val_from: ValidationSource
    subset_per_class: PositiveInt | None


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
    pretrained: bool
    linear_probe: bool
    image_size: PositiveInt | None


# Classifiers that may judge synthetic images or teach the distilled variant: trained on the imbalanced set only.
# `full` saw the images the imbalance removed, so it would pass their knowledge on.
IMBALANCED_SET_VARIANTS = ("oversampled", "baseline", *LOSS_VARIANTS)
DISTILLED_VARIANT = "distilled"  # trained by its own stage (train_distilled), after its teacher


def _trained_on_the_imbalanced_set(variant: str) -> str:
    """`variant` if a classifier trained as it never saw the images the imbalance removed."""
    if variant == "full":
        raise ValueError(
            "'full' trained on the images the imbalance removed, so it cannot judge or teach fairly; "
            f"use one of {', '.join(IMBALANCED_SET_VARIANTS)}"
        )
    if variant not in IMBALANCED_SET_VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (allowed: {', '.join(IMBALANCED_SET_VARIANTS)})")
    return variant


ImbalancedSetVariant = Annotated[str, AfterValidator(_trained_on_the_imbalanced_set)]


class SyntheticFilterParams(Section):
    """Drop synthetic images a real-data classifier (the judge) puts in another class or doubts."""

    enabled: bool
    min_confidence: Probability
    judge: ImbalancedSetVariant


class DistillParams(Section):
    """The distilled variant: the imbalanced set, learnt from the labels and a trained teacher's soft targets."""

    teacher: ImbalancedSetVariant  # a variant of teacher_classifier, the same seed as the student
    teacher_classifier: Classifier
    temperature: PositiveFloat
    alpha: Probability


class LossBaselineParams(Section):
    """Settings of the loss-side baselines (variants class_weighted, logit_adjusted, label_smoothed)."""

    logit_adjustment_tau: PositiveFloat
    label_smoothing: Annotated[float, Strict(False), Field(gt=0.0, lt=1.0)]


class TrainParams(Section):
    seed_processes: PositiveInt  # seeds trained at once on the CPU, a worker process each
    epochs: PositiveInt
    early_stopping_patience: NonNegativeInt
    batch_size: PositiveInt
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    schedule: Literal["linear", "cosine", "constant", "torch_linearlr"]
    lr_end_factor: Probability
    select: Literal["best_val", "last"]
    label_smoothing: BelowOne
    augment_p: Probability
    augment_stages: Annotated[list[AugmentationStage], Field(min_length=1)]
    augment_engine: AugmentationEngine
    image_size: PositiveInt
    eval_batch_size: PositiveInt
    device: Device
    synthetic_filter: SyntheticFilterParams
    loss_baselines: LossBaselineParams
    distill: DistillParams
    vit: VitParams
    cnn: CnnParams
    timm: TimmParams


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


class FidParams(Section):
    feature_extractor: Literal["auto", "inception", "classifier"]
    inception_weights: str | None
    inception_url: str | None
    dims: Literal[64, 192, 768, 2048]
    kid_subsets: PositiveInt
    kid_subset_size: PositiveInt
    precision_recall_k: NonNegativeInt
    collapse_ratio: Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]
    near_duplicate_distance: Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]
    usable_margin: Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]
    usable_level: Annotated[float, Strict(False), Field(gt=0.0, lt=1.0)]
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


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql")  # SQLAlchemy URLs Optuna's RDB storage takes

# Train keys the search may set; each is either a range or a list of choices.
SEARCHABLE_KEYS = ("lr", "weight_decay", "batch_size", "label_smoothing", "augment_p", "epochs", "lr_end_factor")


class PrunerParams(Section):
    startup_trials: NonNegativeInt
    warmup_epochs: NonNegativeInt


class HpoParams(Section):
    """`synthaug hpo`: an Optuna study over train keys for one (classifier, variant), on validation macro-F1."""

    study: Annotated[str, Field(min_length=1)]
    storage: str | None
    classifier: Classifier
    variant: Variant
    seed: int
    sampler_seed: int
    trials: PositiveInt
    pruner: PrunerParams
    space: dict[str, SearchRange | Annotated[list[int | Float], Field(min_length=1)]]

    @field_validator("storage")
    @classmethod
    def _database_url_without_password(cls, storage: str | None) -> str | None:
        if storage is None:
            return None
        parts = urlsplit(storage)
        if parts.scheme.split("+")[0] not in DATABASE_SCHEMES:
            raise ValueError(f"expected a database URL ({', '.join(DATABASE_SCHEMES)}), or null for the sqlite file")
        if parts.password is not None:
            # params.yaml is committed and logged: a password there would be published
            raise ValueError("remove the password from the URL; give it in PGPASSWORD or ~/.pgpass instead")
        return storage

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

    batch_size: PositiveInt
    warmup: NonNegativeInt
    repeats: PositiveInt
    steps: NonNegativeInt
    device: Device


class TrackingParams(Section):
    """How stages treat the MLflow store; read by every stage, decides no output (so no DVC dependency)."""

    strict: bool


class ExperimentParams(Section):
    """The matrix dvc.yaml expands: which classifiers, data variants and seeds to train."""

    preset: str
    classifiers: Annotated[list[Classifier], Field(min_length=1)]
    variants: Annotated[list[Variant], Field(min_length=1)]
    seeds: Annotated[list[int], Field(min_length=1)]
    distilled: list[Classifier]  # classifiers also trained as the distilled variant (stage train_distilled)
    # Each adds train_generator/synthesize/fid entries and a synthetic_<g> variant; the report needs one at least.
    generators: Annotated[list[Generator], Field(min_length=1)]
    # per_seed: seed k trains and samples its own generator run, so intervals include the generator's variance;
    # shared: one run serves every seed, and the verdicts are conditional on it.
    generator_runs: Literal["per_seed", "shared"]
    # loss variants also trained on top of every generator's images: variants synthetic_<g>+<loss variant>
    composed: list[LossVariant]

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

    @model_validator(mode="after")
    def _composed_once_each(self) -> ExperimentParams:
        if len(set(self.composed)) != len(self.composed):
            raise ValueError(f"experiment.composed: {self.composed} names a loss variant twice")
        return self

    @model_validator(mode="after")
    def _students_are_in_the_matrix(self) -> ExperimentParams:
        if not set(self.distilled) <= set(self.classifiers) or len(set(self.distilled)) != len(self.distilled):
            raise ValueError(
                f"experiment.distilled: {self.distilled} must name each classifier once, from experiment.classifiers "
                f"{self.classifiers}"
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


def _describe(error: ErrorDetails, section: str, model: type[Section]) -> str:
    key = ".".join([section, *map(str, error["loc"])])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (allowed: {', '.join(_allowed_keys(model, error['loc'][:-1]))})"
    if error["type"] == "value_error" and not error["loc"]:  # a cross-field rule: its message names the keys
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key}: missing"
    return f"{key}: {str(error['msg']).removeprefix('Value error, ')} (got {redact_url(error.get('input'))!r})"


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


def _judge_is_trained(sections: dict[str, Any]) -> str | None:
    judge, variants = sections["train"].synthetic_filter.judge, sections["experiment"].variants
    if judge in variants:
        return None
    return (
        f"train.synthetic_filter.judge: {judge!r} is not in experiment.variants {variants}; "
        "the pipeline must train the judge (add it there, or pick one of them)"
    )


def _teacher_is_trained(sections: dict[str, Any]) -> str | None:
    distill, experiment = sections["train"].distill, sections["experiment"]
    if not experiment.distilled or (
        distill.teacher in experiment.variants and distill.teacher_classifier in experiment.classifiers
    ):
        return None
    return (
        f"train.distill: the teacher {distill.teacher_classifier}-{distill.teacher} is not trained "
        f"(experiment.classifiers {experiment.classifiers}, experiment.variants {experiment.variants}); the pipeline "
        "must train it before experiment.distilled can learn from it"
    )


@dataclass(frozen=True)
class CrossSectionRule:
    """A rule between params sections, and the stages that would otherwise fail on it (DVC's "missing dependency"
    for an entry the matrix never trains). `problem` gets the validated sections and names the key it refuses."""

    sections: tuple[str, ...]
    stages: tuple[str, ...]
    problem: Callable[[dict[str, Any]], str | None]


CROSS_SECTION_RULES = (
    # the synthetic variants' filter reads the judge entry's checkpoints
    CrossSectionRule(("train", "experiment"), ("train_synthetic", "train_composed"), _judge_is_trained),
    # the distilled variant learns from the teacher entry's checkpoints
    CrossSectionRule(("train", "experiment"), ("train_distilled",), _teacher_is_trained),
)


def checked_sections(data: dict[str, Any]) -> tuple[dict[str, Section], list[str]]:
    """The sections of a params.yaml dict that validate, and every problem, one line each: unknown and missing
    sections, each section's bad keys, then every cross-section rule whose sections are valid."""
    problems = []
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        problems.append(f"{PARAMS_FILE}: unknown section(s) {unknown} (allowed: {', '.join(SECTIONS)})")
    missing = sorted(set(SECTIONS) - set(data))
    if missing:
        problems.append(f"{PARAMS_FILE}: missing section(s) {missing}")
    sections: dict[str, Section] = {}
    for name, model in SECTIONS.items():
        if name not in data:
            continue
        try:
            sections[name] = parse_section(name, data[name], model)
        except ParamsError as error:
            problems.append(str(error))
    for rule in CROSS_SECTION_RULES:
        if all(name in sections for name in rule.sections):
            problem = rule.problem(sections)
            if problem is not None:
                problems.append(f"{PARAMS_FILE}: {problem}")
    return sections, problems


def params_problems(data: dict[str, Any]) -> list[str]:
    """Every problem of a params.yaml dict, one line each (checked_sections)."""
    return checked_sections(data)[1]


def validate_all(data: dict[str, Any]) -> dict[str, Section]:
    """Every section validated, unknown top-level sections refused, every cross-section rule kept; or ParamsError
    with the first problem."""
    sections, problems = checked_sections(data)
    if problems:
        raise ParamsError(problems[0])
    return sections


def check_stage_rules(stage: str, path: str | Path = PARAMS_FILE) -> None:
    """The cross-section rules that concern `stage`, run before it starts: ParamsError naming the key."""
    for rule in CROSS_SECTION_RULES:
        if stage in rule.stages:
            sections = {name: load_section(name, SECTIONS[name], path) for name in rule.sections}
            problem = rule.problem(sections)
            if problem is not None:
                raise ParamsError(f"{path}: {problem}")


def compose_params(conf_dir: str | Path = "conf", overrides: list[str] | None = None) -> dict[str, Any]:
    """Compose conf/ exactly as `dvc exp run` does (Hydra compose API) into a params.yaml dict."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(conf_dir).resolve()), version_base=None):
        config = compose(config_name="config", overrides=overrides or [])
    return cast(dict[str, Any], OmegaConf.to_container(config, resolve=True))


def compose_assignments(conf_dir: str | Path, assignments: list[str]) -> tuple[dict[str, Any], list[str]]:
    """conf/ composed with KEY=VALUE assignments (as `dvc exp run -S` takes them), and the keys they set; a key
    conf/config.yaml does not define, or a malformed assignment, is a ParamsError naming it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    keys = []
    for assignment in assignments:
        key, sep, _ = assignment.partition("=")
        if not sep or not key or key.startswith(("+", "~")):
            raise ParamsError(f"{assignment!r}: expected KEY=VALUE for a key conf/config.yaml defines")
        keys.append(key)
    try:
        return compose_params(conf_dir, assignments), keys
    except (HydraException, OmegaConfBaseException) as exc:
        first_line = str(exc).strip().splitlines()[0]  # Hydra's second line suggests '+key', which params refuse
        raise ParamsError(f"{first_line} (not a key of conf/config.yaml, or not a valid value)") from None


def write_local_settings(conf_dir: str | Path, assignments: list[str]) -> tuple[Path, dict[str, Any]]:
    """Set KEY=VALUE assignments (Hydra's override syntax) in conf_dir/local/settings.yaml, keeping what the file
    already sets. The composed result must validate, so a wrong key or value fails here, naming it, and the file is
    left as it was. Returns the file and the values now set."""
    from omegaconf import OmegaConf

    path = Path(conf_dir) / LOCAL_SETTINGS
    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}
    composed, keys = compose_assignments(conf_dir, assignments)
    validate_all(composed)
    merged = OmegaConf.create(settings)
    for key in keys:
        value = composed
        for part in key.split("."):
            value = value[part]
        OmegaConf.update(merged, key, value, force_add=True)
    settings = cast(dict[str, Any], OmegaConf.to_container(merged))
    header = (
        "# @package _global_\n# This clone's own settings, composed after the preset (git-ignored): written by "
        "`synthaug local KEY=VALUE` and `make demo ARCHIVE=...`.\n"
    )
    write_text(path, header + yaml.safe_dump(settings, sort_keys=False))
    return path, settings
