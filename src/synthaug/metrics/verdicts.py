"""Uncertainty over seeds: t intervals, paired differences between variants, and the verdict they support.

A seed varies the classifier's initialization, batch order, augmentation and the copies `oversampled` draws;
the imbalanced split and the generators stay fixed. Two variants trained with the same seed are paired: their
difference per seed cancels what the seed does to both, so the interval of the differences is what a verdict
rests on.
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


def verdict(difference: Interval, reference: str) -> str:
    """What the interval of paired differences supports: it lies above 0, below 0, or contains 0."""
    if difference.n < 2:
        return f"no interval ({difference.n} seed)"
    if difference.low > 0:
        return f"beats {reference}"
    if difference.high < 0:
        return f"loses to {reference}"
    return f"within noise ({difference.n} seeds)"


def above_chance(correct: int, total: int, num_classes: int, level: float = 0.05) -> tuple[bool, float]:
    """One-sided exact binomial test that an accuracy of correct/total beats guessing among `num_classes`:
    (chance rejected at `level`, p-value). No images: nothing shown, (False, 1.0)."""
    if total == 0:
        return False, 1.0
    p_value = float(stats.binomtest(correct, total, 1.0 / num_classes, alternative="greater").pvalue)
    return p_value < level, p_value
