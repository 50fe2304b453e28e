"""Typed, validated sections of params.yaml: one model per pipeline stage (the generators' in generator_params).

Every field is required and unknown keys are rejected, so a typo fails before any work with a message that
names the key. Each key is spelled, defaulted and explained once, in conf/config.yaml (params.yaml is composed
from it); this module holds each key's type and the rules within a section (param_rules: between sections).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from synthaug.core.variants import (
    IMBALANCED_SET_VARIANTS,
    CarefulUse,
    Classifier,
    Generator,
    LossVariant,
    Variant,
)

# YAML writes 1e-4 as a string under YAML 1.1 resolvers (PyYAML); accept numeric strings for floats only.
Float = Annotated[float, Strict(False)]
PositiveFloat = Annotated[float, Strict(False), Field(gt=0.0)]
NonNegativeFloat = Annotated[float, Strict(False), Field(ge=0.0)]
Fraction = Annotated[float, Strict(False), Field(gt=0.0, le=1.0)]  # a share that cannot be zero
Probability = Annotated[float, Strict(False), Field(ge=0.0, le=1.0)]
BelowOne = Annotated[float, Strict(False), Field(ge=0.0, lt=1.0)]  # decays, smoothing, Adam betas
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]

Device = Literal["auto", "cpu", "cuda"]
AugmentationStage = Literal["crop", "geometry", "color", "blur_noise", "occlusion"]  # groups of synthaug.data.augment
AugmentationEngine = Literal["torch", "albumentations"]
ImbalanceShape = Literal["linear", "exponential", "explicit"]
ValidationSource = Literal["pool", "removed"]
GanLoss = Literal["bce", "hinge"]  # hinge: the SNGAN loss (Miyato et al. 2018)
DiffAugmentation = Literal["color", "translation", "cutout"]  # DiffAugment's policy (Zhao et al. 2020)

AUGMENTATION_STAGES = get_args(AugmentationStage)
AUGMENTATION_ENGINES = get_args(AugmentationEngine)


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


class ClassGroupsParams(Section):
    """Many / medium / few classes by imbalanced training images, as a fraction of the largest class's."""

    many_from: Fraction
    few_upto: Fraction

    @model_validator(mode="after")
    def _few_below_many(self) -> ClassGroupsParams:
        if self.few_upto >= self.many_from:
            raise ValueError(f"train.class_groups: few_upto {self.few_upto} must be below many_from {self.many_from}")
        return self


class CarefulParams(Section):
    """How the careful variants use the generated images: weighted_<g> and finetuned_<g> (experiment.careful)."""

    synthetic_weight: Fraction  # weighted_<g>: each generated image's loss weight (a real one's is 1)
    real_epochs: PositiveInt  # finetuned_<g>: the last epochs on the real images only, with a class-balanced loss


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
    class_groups: ClassGroupsParams
    careful: CarefulParams
    synthetic_filter: SyntheticFilterParams
    loss_baselines: LossBaselineParams
    distill: DistillParams
    vit: VitParams
    cnn: CnnParams
    timm: TimmParams


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
    description: str  # what the preset is for and why its classifier; the report opens with it
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
    careful: list[CarefulUse]  # generated images used with care: variants weighted_<g>, finetuned_<g>

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
        if len(set(self.careful)) != len(self.careful):
            raise ValueError(f"experiment.careful: {self.careful} names a use twice")
        return self

    @model_validator(mode="after")
    def _students_are_in_the_matrix(self) -> ExperimentParams:
        if not set(self.distilled) <= set(self.classifiers) or len(set(self.distilled)) != len(self.distilled):
            raise ValueError(
                f"experiment.distilled: {self.distilled} must name each classifier once, from experiment.classifiers "
                f"{self.classifiers}"
            )
        return self
