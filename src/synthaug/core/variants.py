"""The names of classifiers, data variants and generators, and how a variant's name is built from them.

Every closed set of names is one Literal type, and the tuples the code iterates over are read from it.
"""

from __future__ import annotations

from typing import Literal, get_args

Classifier = Literal["vit", "cnn", "timm"]
BaseVariant = Literal["baseline", "oversampled", "full"]
LossVariant = Literal["class_weighted", "logit_adjusted", "label_smoothed"]  # the imbalanced set, another loss
Variant = Literal[BaseVariant, LossVariant]
Generator = Literal["sdxl_turbo", "ddpm", "gan"]
TrainedGenerator = Literal["ddpm", "gan"]  # trained by the pipeline; sdxl_turbo is loaded pretrained
CarefulUse = Literal["weighted", "finetuned"]  # generated images used with care: variants <use>_<generator>

CLASSIFIERS = get_args(Classifier)
BASE_VARIANTS = get_args(BaseVariant)
LOSS_VARIANTS = get_args(LossVariant)
COMPOSED_SEPARATOR = "+"  # synthetic_<generator>+<loss variant>: both remedies at once (experiment.composed)
GENERATORS = get_args(Generator)
TRAINED_GENERATORS = get_args(TrainedGenerator)
CAREFUL_USES = get_args(CarefulUse)

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


def careful_variant(use: str, generator: str) -> str:
    """weighted_<g> (a lower loss weight for the generated images) or finetuned_<g> (a last phase on real images)."""
    return f"{use}_{generator}"


def careful_use_of(variant: str) -> str | None:
    """The careful use a <use>_<generator> variant names; None for every other variant."""
    use = variant.split("_", 1)[0]
    return use if use in CAREFUL_USES and "_" in variant else None


def added_generator(variant: str) -> str | None:
    """The generator whose images a synthetic_<g> variant (or a composed synthetic_<g>+<loss variant>, or a careful
    <use>_<g>) adds to the real ones; None for every other variant, synthetic_only_<g> included."""
    if variant.startswith(SYNTHETIC_PREFIX) and not variant.startswith(SYNTHETIC_ONLY_PREFIX):
        return variant.removeprefix(SYNTHETIC_PREFIX).split(COMPOSED_SEPARATOR)[0]
    if careful_use_of(variant) is not None:
        return variant.split("_", 1)[1]
    return None


def loss_variant_of(variant: str) -> str:
    """The variant whose loss `variant` trains with: its remedy when composed, itself otherwise."""
    return variant.rsplit(COMPOSED_SEPARATOR, 1)[-1]


# Classifiers that may judge synthetic images or teach the distilled variant: trained on the imbalanced set only.
# `full` saw the images the imbalance removed, so it would pass their knowledge on.
IMBALANCED_SET_VARIANTS = ("oversampled", "baseline", *LOSS_VARIANTS)
DISTILLED_VARIANT = "distilled"  # trained by its own stage (train_distilled), after its teacher
