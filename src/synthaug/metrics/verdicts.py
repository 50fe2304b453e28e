"""Uncertainty over seeds: t intervals, paired differences between variants, and the verdict they support.

A seed varies the classifier's initialization, batch order, augmentation and the copies `oversampled` draws, and
for a synthetic variant also the generator run it draws from (experiment.generator_runs: per_seed; shared keeps one);
the imbalanced split stays fixed. Two variants trained with the same seed are paired: their difference per seed
cancels what the seed does to both, so the interval of the differences is what a verdict rests on. A table of
verdicts is a family of tests: its verdicts are corrected with Holm's step-down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean over n seeds, sample std, and the two-sided t confidence interval (NaN bounds below 2 seeds)."""

    mean: float
    std: float
    low: float
    high: float
    n: int


def t_interval(values: list[float], confidence: float = 0.95) -> Interval:
    """mean ± t_{(1+c)/2, n-1} · s / sqrt(n)."""
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if len(data) < 2:
        return Interval(mean, 0.0, math.nan, math.nan, len(data))
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, len(data) - 1)) * std / math.sqrt(len(data))
    return Interval(mean, std, mean - half, mean + half, len(data))


def paired_differences(scores: dict[int, float], reference: dict[int, float]) -> list[float]:
    """score - reference for every seed both have, in seed order."""
    return [scores[seed] - reference[seed] for seed in sorted(set(scores) & set(reference))]


def half_width(interval: Interval) -> float:
    """Half the interval's width: with the mean inside it, no effect larger than this (from the mean) was seen."""
    return (interval.high - interval.low) / 2.0


def smallest_established(difference: Interval, tests: int, alpha: float = 0.05) -> float:
    """The smallest mean paired difference Holm's correction over `tests` calls beats or loses at its strictest
    step (alpha / tests), at this comparison's seed-to-seed spread: the effect it could have established."""
    if difference.n < 2:
        return math.nan
    quantile = float(stats.t.ppf(1.0 - alpha / (2.0 * max(1, tests)), difference.n - 1))
    return quantile * difference.std / math.sqrt(difference.n)


def seeds_needed(std: float, effect: float, tests: int = 1, alpha: float = 0.05, most: int = 1000) -> int | None:
    """The fewest seeds at which a mean paired difference of `effect` is established (smallest_established),
    given the differences' sample std; None if more than `most`."""
    for seeds in range(2, most + 1):
        if smallest_established(Interval(effect, std, math.nan, math.nan, seeds), tests, alpha) < abs(effect):
            return seeds
    return None


def paired_p_value(differences: list[float]) -> float:
    """Two-sided one-sample t test that the mean paired difference is 0 (the test the t interval inverts)."""
    data = np.asarray(differences, dtype=np.float64)
    if len(data) < 2:
        return math.nan
    std = float(data.std(ddof=1))
    if std < 1e-12:  # every seed moved by the same amount (up to rounding): t is infinite unless that is 0
        return 1.0 if abs(data.mean()) < 1e-12 else 0.0
    return float(stats.ttest_1samp(data, 0.0).pvalue)


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order (NaN stays NaN and does not count): reject
    adjusted p < alpha and the family-wise error rate over the set is at most alpha."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


def corrected_verdict(difference: Interval, adjusted_p: float, reference: str, alpha: float = 0.05) -> str:
    """The verdict after the correction: a direction only where the adjusted p-value is below alpha."""
    if difference.n < 2:
        return f"no interval ({difference.n} seed)"
    if adjusted_p < alpha:
        return f"beats {reference}" if difference.mean > 0 else f"loses to {reference}"
    return f"within noise ({difference.n} seeds)"


def verdict(difference: Interval, reference: str) -> str:
    """What the interval of paired differences supports: it lies above 0, below 0, or contains 0."""
    if difference.n < 2:
        return f"no interval ({difference.n} seed)"
    if difference.low > 0:
        return f"beats {reference}"
    if difference.high < 0:
        return f"loses to {reference}"
    return f"within noise ({difference.n} seeds)"


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN bounds without trials)."""
    if total == 0:
        return math.nan, math.nan
    z = float(stats.norm.ppf((1.0 + confidence) / 2.0))
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    successes_a: int, total_a: int, successes_b: int, total_b: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p_a - p_b for two independent proportions (his method 10): well
    behaved at proportions near 0 or 1, where the Wald interval is not."""
    if total_a == 0 or total_b == 0:
        return math.nan, math.nan
    p_a, p_b = successes_a / total_a, successes_b / total_b
    low_a, high_a = wilson_interval(successes_a, total_a, confidence)
    low_b, high_b = wilson_interval(successes_b, total_b, confidence)
    below = math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    above = math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return p_a - p_b - below, p_a - p_b + above


@dataclass(frozen=True)
class Recognition:
    """How a judge labels one class's generated images against the other classes' generated images.

    `own`: the share of class c's images it labels c; `others`: the share of the other classes' images it labels
    c. Their difference (Youden's J for c) is the margin: a judge that labels everything c scores own = others = 1,
    margin 0, however many images there are.
    """

    own: float
    others: float
    low: float
    high: float
    p_value: float
    images: int

    @property
    def margin(self) -> float:
        return self.own - self.others


def class_recognition(confusion: np.ndarray, cls: int, confidence: float = 0.95) -> Recognition:
    """`confusion[i, j]`: generated images of class i the judge labels j. Class `cls`'s margin, its Newcombe
    interval and the one-sided Fisher exact p-value that own > others."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits, images = int(confusion[cls, cls]), int(confusion[cls].sum())
    false_hits = int(confusion[:, cls].sum()) - hits
    other_images = int(confusion.sum()) - images
    if images == 0 or other_images == 0:
        return Recognition(math.nan, math.nan, math.nan, math.nan, 1.0, images)
    low, high = difference_interval(hits, images, false_hits, other_images, confidence)
    table = [[hits, images - hits], [false_hits, other_images - false_hits]]
    p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    return Recognition(hits / images, false_hits / other_images, low, high, p_value, images)


def recognized(reading: Recognition, min_margin: float, level: float = 0.05) -> bool:
    """The judge tells the class's images from the others': the margin is at least `min_margin` (a size of
    effect, so the decision does not drift with the number of images) and own > others is significant at
    `level` (so a handful of images cannot pass by luck)."""
    return bool(reading.images > 0 and reading.margin >= min_margin and reading.p_value < level)
