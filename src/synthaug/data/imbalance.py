"""Imbalanced training splits as index arrays into the fetched train set (never copies)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np

from synthaug.core.errors import ImbalanceError
from synthaug.core.params import ImbalanceShape, ValidationSource
from synthaug.core.seeding import derive_seed
from synthaug.core.variants import (
    CAREFUL_USES,
    DISTILLED_VARIANT,
    LOSS_VARIANTS,
    REAL_EQUAL_PREFIX,
    SYNTHETIC_ONLY_PREFIX,
    added_generator,
)
from synthaug.data.storage import ImageSet, load_image_set, load_index_arrays


def linear_fractions(num_classes: int, min_fraction: float) -> np.ndarray:
    """The reference study's shape: class 0 keeps `min_fraction`, rising linearly to 1.0 for the last class."""
    return np.linspace(min_fraction, 1.0, num_classes)


def exponential_fractions(num_classes: int, imbalance_factor: float) -> np.ndarray:
    """CIFAR-10-LT (Cao et al. 2019, arXiv:1906.07413): class i keeps factor^(-i/(C-1)); head is class 0."""
    if num_classes == 1:
        return np.ones(1)
    return imbalance_factor ** (-np.arange(num_classes) / (num_classes - 1))


def keep_fractions(
    shape: str,
    num_classes: int,
    *,
    min_fraction: float,
    imbalance_factor: float,
    fractions: list[float] | None,
) -> np.ndarray:
    if shape == "linear":
        return linear_fractions(num_classes, min_fraction)
    if shape == "exponential":
        return exponential_fractions(num_classes, imbalance_factor)
    if shape == "explicit":
        if fractions is None or len(fractions) != num_classes:
            got = "none" if fractions is None else len(fractions)
            raise ImbalanceError(f"imbalance.fractions: need {num_classes} fractions (one per class), got {got}")
        return np.asarray(fractions, dtype=np.float64)
    allowed = ", ".join(get_args(ImbalanceShape))
    raise ImbalanceError(f"imbalance.shape: unknown shape {shape!r} (allowed: {allowed})")


@dataclass(frozen=True)
class Splits:
    """Indices into the fetched train split. `full` is all of train except `val`."""

    train: np.ndarray  # the imbalanced training set
    val: np.ndarray  # balanced validation set, held out before imbalancing
    full: np.ndarray  # the balanced upper bound (same pool as train, nothing dropped)

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "full": self.full}


def make_splits(
    labels: np.ndarray,
    class_names: tuple[str, ...],
    fractions: np.ndarray,
    *,
    val_per_class: int,
    subset_per_class: int | None,
    seed: int,
    val_from: ValidationSource = "pool",
) -> Splits:
    """Per class, in one seeded order, a kept fraction for training and `val_per_class` images for validation.

    val_from pool: the validation images are held out first, then the rest is capped at `subset_per_class` and
    the cut keeps a fraction of it. removed: the class is capped, the cut keeps a fraction of all of it, and the
    validation images come from the ones the cut removed (they never reach training), topped up from the end of
    the kept ones where the cut removed too few (a class kept whole). `full` is the capped class without `val`.
    """
    rng = np.random.default_rng(seed)
    train, val, full = [], [], []
    for cls, name in enumerate(class_names):
        members = rng.permutation(np.flatnonzero(labels == cls))
        if len(members) <= val_per_class:
            raise ImbalanceError(
                f"class '{name}' has {len(members)} train images, not enough for "
                f"imbalance.val_per_class={val_per_class}"
            )
        if val_from == "pool":
            held_out, pool = members[:val_per_class], members[val_per_class:][:subset_per_class]
            keep = int(round(fractions[cls] * len(pool)))
            kept, rest = pool[:keep], pool
        else:
            pool = members[:subset_per_class]
            keep = int(round(fractions[cls] * len(pool)))
            taken_from_kept = max(0, val_per_class - (len(pool) - keep))
            held_out = np.concatenate([pool[keep:][:val_per_class], pool[keep - taken_from_kept : keep]])
            kept = pool[: keep - taken_from_kept]
            rest = np.setdiff1d(pool, held_out)
        if len(kept) == 0:
            raise ImbalanceError(
                f"class '{name}' would be empty after imbalancing ({len(pool)} images x fraction {fractions[cls]:.4g}"
                + (f", {val_per_class} of them held out for validation)" if val_from == "removed" else ")")
            )
        val.append(held_out)
        full.append(rest)
        train.append(kept)
    return Splits(*(np.sort(np.concatenate(parts)).astype(np.int64) for parts in (train, val, full)))


def oversample(indices: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Random oversampling: repeat each class's samples (drawn with replacement) up to the largest count."""
    rng = np.random.default_rng(seed)
    chosen_labels = labels[indices]
    classes, counts = np.unique(chosen_labels, return_counts=True)
    target = counts.max()
    parts = []
    for cls, count in zip(classes, counts, strict=True):
        members = indices[chosen_labels == cls]
        parts.append(members)
        parts.append(rng.choice(members, size=target - count, replace=True))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def equal_size_indices(
    pool: np.ndarray, labels: np.ndarray, per_class: np.ndarray, seed: int, class_names: Sequence[str]
) -> np.ndarray:
    """A balanced draw without replacement from `pool`: per_class[c] indices of class c."""
    rng = np.random.default_rng(seed)
    parts = []
    for cls, wanted in enumerate(per_class.tolist()):
        members = pool[labels[pool] == cls]
        if len(members) < wanted:
            raise ImbalanceError(
                f"{REAL_EQUAL_PREFIX}<generator>: class {class_names[cls]!r} has {len(members)} real training "
                f"images, fewer than the {wanted} generated ones it must match; lower synthesize.eval_per_class or "
                "raise imbalance.subset_per_class"
            )
        parts.append(rng.choice(members, size=wanted, replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def variant_indices(
    variant: str,
    splits: dict[str, np.ndarray],
    labels: np.ndarray,
    seed: int,
    per_class: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Real training indices of a variant: the imbalanced set (also under synthetic_<generator> variants,
    which add generated images to it, and the loss-side and distilled variants), its oversampled form, all of
    train, none (synthetic_only_<generator>), or `per_class` images of each class drawn from all of train
    (real_equal_<generator>)."""
    if variant.startswith(SYNTHETIC_ONLY_PREFIX):
        return np.zeros(0, np.int64)
    if variant.startswith(REAL_EQUAL_PREFIX):
        if per_class is None:
            raise ValueError(f"variant {variant!r}: needs the per-class counts of the set it matches")
        names = class_names or [str(c) for c in range(len(per_class))]
        return equal_size_indices(splits["full"], labels, per_class, seed, names)
    if variant in ("baseline", DISTILLED_VARIANT, *LOSS_VARIANTS) or added_generator(variant) is not None:
        return splits["train"]
    if variant == "oversampled":
        return oversample(splits["train"], labels, seed)
    if variant == "full":
        return splits["full"]
    allowed = ", ".join(
        (
            "baseline",
            "oversampled",
            "full",
            *LOSS_VARIANTS,
            DISTILLED_VARIANT,
            "synthetic_<generator>",
            "synthetic_only_<generator>",
            "real_equal_<generator>",
            *(f"{use}_<generator>" for use in CAREFUL_USES),
        )
    )
    raise ImbalanceError(f"unknown variant {variant!r} (allowed: {allowed})")


CLASS_GROUPS = ("many", "medium", "few")  # the long-tail literature's groups, by training images per class


def class_groups(train_counts: dict[str, int], many_from: float, few_upto: float) -> dict[str, list[str]]:
    """Each class in one group by its imbalanced training images as a fraction of the largest class's: many from
    `many_from`, few up to `few_upto`, medium between; groups without a class are left out."""
    largest = max(train_counts.values())
    groups: dict[str, list[str]] = {name: [] for name in CLASS_GROUPS}
    for name, count in sorted(train_counts.items(), key=lambda item: (-item[1], item[0])):
        share = count / largest
        groups["many" if share >= many_from else "few" if share <= few_upto else "medium"].append(name)
    return {group: names for group, names in groups.items() if names}


def minority_classes(train_counts: dict[str, int]) -> list[str]:
    """The half of the classes (rounded down, at least one) with the fewest imbalanced training images."""
    ordered = sorted(train_counts, key=lambda name: (train_counts[name], name))
    return ordered[: max(1, len(ordered) // 2)]


def variant_sets(
    dataset: ImageSet,
    splits: dict[str, np.ndarray],
    variant: str,
    seed: int,
    per_class: np.ndarray | None = None,
) -> tuple[ImageSet, ImageSet]:
    """(real training set of `variant`, balanced validation set) of the fetched train split; `per_class` is the
    size a real_equal_<generator> variant matches."""
    train_indices = variant_indices(
        variant, splits, dataset.labels, derive_seed(seed, "oversample"), per_class, dataset.class_names
    )
    return dataset.subset(train_indices), dataset.subset(splits["val"])


def load_variant_sets(data_dir: Path, splits_path: Path, variant: str, seed: int) -> tuple[ImageSet, ImageSet]:
    """variant_sets from the fetch and imbalance outputs."""
    return variant_sets(load_image_set(data_dir / "train.npz"), load_index_arrays(splits_path), variant, seed)
