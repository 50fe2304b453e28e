"""Readings of a generated set against real images: distances overall and per class, diversity and collapse,
and whether a classifier trained on real data tells each class's generated images apart (usability)."""

from __future__ import annotations

import numpy as np

from synthaug.metrics.fid import (
    frechet_distance,
    full_rank,
    kernel_inception_distance,
    kth_neighbour_radii,
    pairwise_distances,
    precision_recall,
)
from synthaug.metrics.verdicts import class_recognition, recognized


def mean_pairwise_distance(features: np.ndarray, chunk: int = 1024) -> float:
    """The mean Euclidean distance over all pairs of distinct rows (nan for fewer than two)."""
    count = len(features)
    if count < 2:
        return float("nan")
    features = np.asarray(features, np.float64)
    total = sum(pairwise_distances(features[s : s + chunk], features).sum() for s in range(0, count, chunk))
    return float(total / (count * (count - 1)))  # the diagonal adds zeros


def _nearest_other(features: np.ndarray) -> np.ndarray:
    return kth_neighbour_radii(np.asarray(features, np.float64), 1)


def class_diversity(real: np.ndarray, fake: np.ndarray, near_duplicate_distance: float) -> dict[str, float]:
    """One class's generated images against its real ones, in the same features: `diversity_ratio`, the generated
    images' mean pairwise distance over the real images'; `near_duplicate_fraction`, the share of generated images
    whose nearest generated neighbour is closer than `near_duplicate_distance` times the real images' median
    nearest-neighbour distance. A generator that ignores its latent reads 0 and 1; an independent real sample of
    the class about 1 and 0."""
    if min(len(real), len(fake)) < 2:
        return {"diversity_ratio": float("nan"), "near_duplicate_fraction": float("nan")}
    ratio = mean_pairwise_distance(fake) / max(mean_pairwise_distance(real), 1e-12)
    threshold = near_duplicate_distance * float(np.median(_nearest_other(real)))
    return {"diversity_ratio": ratio, "near_duplicate_fraction": float((_nearest_other(fake) < threshold).mean())}


def matched_real_indices(real_labels: np.ndarray, fake_labels: np.ndarray) -> np.ndarray:
    """Per class, the first n real images where the generated set has n: the same class distribution."""
    chosen = []
    for cls, count in enumerate(np.bincount(fake_labels, minlength=int(real_labels.max()) + 1)):
        members = np.flatnonzero(real_labels == cls)
        if count > len(members):
            raise ValueError(f"class {cls}: {count} generated images but only {len(members)} real test images")
        chosen.append(members[:count])
    return np.sort(np.concatenate(chosen))


def generation_scores(
    real: np.ndarray,
    fake: np.ndarray,
    real_labels: np.ndarray,
    fake_labels: np.ndarray,
    class_names: tuple[str, ...],
    kid_subsets: int,
    kid_subset_size: int,
    precision_recall_k: int,
    collapse_ratio: float,
    near_duplicate_distance: float,
) -> dict:
    """FID, KID and precision/recall overall; KID and diversity per class, with the classes whose diversity ratio
    is below `collapse_ratio` named as collapsed.

    Per class the sets are small (at most the test set's 1,000 images per class): a Fréchet distance there would
    be rank-deficient and biased by N, so classes are compared with KID, which is unbiased at any size.
    """
    kid_mean, kid_std = kernel_inception_distance(real, fake, kid_subsets, kid_subset_size)
    dims = real.shape[1]
    scores: dict = {
        "fid": frechet_distance(real, fake),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "fid_dims": dims,
        "fid_images": min(len(real), len(fake)),
        "fid_full_rank": full_rank(min(len(real), len(fake)), dims),
    }
    if precision_recall_k > 0:
        scores["precision"], scores["recall"] = precision_recall(real, fake, precision_recall_k)
    per_class = {}
    for cls, name in enumerate(class_names):
        real_c, fake_c = real[real_labels == cls], fake[fake_labels == cls]
        class_kid, class_kid_std = kernel_inception_distance(real_c, fake_c, kid_subsets, kid_subset_size, seed=cls)
        diversity = class_diversity(real_c, fake_c, near_duplicate_distance)
        per_class[name] = {"kid_mean": class_kid, "kid_std": class_kid_std, "images": len(fake_c), **diversity}
        per_class[name]["collapsed"] = bool(diversity["diversity_ratio"] < collapse_ratio)
    scores["per_class"] = per_class
    measured = [e for e in per_class.values() if np.isfinite(e["diversity_ratio"])]
    scores["diversity_ratio"] = float(np.mean([e["diversity_ratio"] for e in measured])) if measured else float("nan")
    scores["near_duplicate_fraction"] = (
        float(sum(e["near_duplicate_fraction"] * e["images"] for e in measured) / sum(e["images"] for e in measured))
        if measured
        else float("nan")
    )
    scores["collapse_ratio"] = collapse_ratio
    scores["collapsed_classes"] = [name for name, e in per_class.items() if e["collapsed"]]
    return scores


def judge_confusion(fake_labels: np.ndarray, judge_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[i, j]: generated images of class i that the judge (a classifier trained on real data) labels j."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(fake_labels), np.asarray(judge_labels)), 1)
    return confusion


def usability(
    scores: dict, confusion: np.ndarray, class_names: tuple[str, ...], min_margin: float, level: float
) -> dict:
    """`scores` with, per class, how the judge tells its generated images from the other classes' (own, others,
    the margin with its 95 % interval, the Fisher p-value), whether it does (`recognized`), and `usable`:
    recognized and not collapsed. Also the classes that are not usable, and the confusion itself."""
    per_class = {}
    for cls, name in enumerate(class_names):
        reading = class_recognition(confusion, cls)
        entry = dict(scores["per_class"][name])
        entry.update(
            recognition=reading.own,
            false_recognition=reading.others,
            recognition_margin=reading.margin,
            recognition_margin_low=reading.low,
            recognition_margin_high=reading.high,
            recognition_p_value=reading.p_value,
            recognized=recognized(reading, min_margin, level),
        )
        entry["usable"] = bool(entry["recognized"] and not entry.get("collapsed", False))
        per_class[name] = entry
    return {
        **scores,
        "per_class": per_class,
        "judge_confusion": confusion.tolist(),
        "usable_margin": min_margin,
        "usable_level": level,
        "unusable_classes": [name for name, entry in per_class.items() if not entry["usable"]],
    }
