"""Verdicts from paired differences over seeds, on fixtures whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthaug.metrics.report import EntryResult, verdict_rows, verdicts_markdown
from synthaug.metrics.verdicts import paired_differences, t_interval, verdict


def test_t_interval_is_the_textbook_one():
    interval = t_interval([1.0, 2.0, 3.0])
    # mean 2, s = 1, t(0.975, 2) = 4.302653: half width 4.302653 / sqrt(3)
    assert (interval.mean, interval.std, interval.n) == (2.0, 1.0, 3)
    assert interval.high - interval.mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert interval.low == pytest.approx(2.0 - 2.484138, rel=1e-6)
    single = t_interval([0.3])
    assert single.mean == 0.3 and single.std == 0.0 and math.isnan(single.low) and math.isnan(single.high)


def test_differences_pair_by_seed():
    assert paired_differences({0: 0.5, 1: 0.6, 2: 0.7}, {2: 0.6, 0: 0.45, 5: 0.1}) == pytest.approx([0.05, 0.1])


@pytest.mark.parametrize(
    ("differences", "expected"),
    [
        ([0.05, 0.06, 0.04], "beats oversampling"),
        ([-0.05, -0.06, -0.04], "loses to oversampling"),
        ([0.05, -0.04, 0.01], "within noise (3 seeds)"),
        ([0.05], "no interval (1 seed)"),
    ],
)
def test_verdict_follows_the_interval(differences, expected):
    assert verdict(t_interval(differences), "oversampling") == expected


def entry(variant: str, seed: int, macro_f1: float) -> EntryResult:
    return EntryResult("vit", variant, seed, {"macro_f1": macro_f1}, np.eye(2), [])


def test_pairing_sees_a_small_consistent_gain_that_seed_spread_hides():
    # Seeds move every variant by ±0.1 together; synthetic is 0.01 above oversampled on every seed.
    base = {0: 0.50, 1: 0.60, 2: 0.70}
    results = [entry("baseline", s, v - 0.2) for s, v in base.items()]
    results += [entry("oversampled", s, v) for s, v in base.items()]
    results += [entry("synthetic_gan", s, v + 0.01) for s, v in base.items()]
    unpaired = t_interval([v + 0.01 for v in base.values()])
    assert unpaired.low < t_interval(list(base.values())).mean < unpaired.high  # unpaired, it would be noise
    rows = {row["variant"]: row for row in verdict_rows(results)}
    assert set(rows) == {"baseline", "oversampled", "synthetic_gan"}
    difference, said = rows["synthetic_gan"]["comparisons"]["oversampled"]
    assert said == "beats oversampling" and difference.mean == pytest.approx(0.01)
    assert rows["synthetic_gan"]["comparisons"]["baseline"][1] == "beats baseline"
    assert rows["baseline"]["comparisons"]["oversampled"][1] == "loses to oversampling"
    assert "baseline" not in rows["baseline"]["comparisons"]
    table = verdicts_markdown(list(rows.values()))
    assert (
        "| vit | synthetic_gan | +0.0100 [+0.0100, +0.0100] | beats oversampling | +0.2100 [+0.2100, +0.2100] | "
        "beats baseline |" in table
    )
    assert "| vit | oversampled | — | — | +0.2000 [+0.2000, +0.2000] | beats baseline |" in table


def binomial_tail(correct: int, total: int, p: float) -> float:
    return sum(math.comb(total, k) * p**k * (1 - p) ** (total - k) for k in range(correct, total + 1))


@pytest.mark.parametrize(
    ("correct", "total", "classes", "expected"),
    [
        (30, 100, 10, True),  # 3x chance
        (10, 100, 10, False),  # chance itself
        (14, 100, 10, False),  # above chance, but 100 images cannot tell it from guessing
        (140, 1000, 10, True),  # the same rate over 1000 images can
        (0, 0, 10, False),  # no images: nothing shown
    ],
)
def test_above_chance_is_the_one_sided_binomial_test(correct, total, classes, expected):
    from synthaug.metrics.verdicts import above_chance

    rejected, p_value = above_chance(correct, total, classes)
    assert rejected is expected
    if total:
        assert p_value == pytest.approx(binomial_tail(correct, total, 1 / classes), rel=1e-9)
