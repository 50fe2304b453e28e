"""Verdicts from paired differences over seeds, on fixtures whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from synthaug.metrics.verdicts import paired_differences, t_interval, verdict
from synthaug.report.records import EntryResult
from synthaug.report.summaries import verdict_rows
from synthaug.report.tables import verdicts_markdown


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
    comparison = rows["synthetic_gan"]["comparisons"]["oversampled"]
    assert comparison.verdict == "beats oversampling" and comparison.difference.mean == pytest.approx(0.01)
    assert rows["synthetic_gan"]["comparisons"]["baseline"].verdict == "beats baseline"
    assert rows["baseline"]["comparisons"]["oversampled"].verdict == "loses to oversampling"
    assert "baseline" not in rows["baseline"]["comparisons"]
    table = verdicts_markdown(list(rows.values()))
    assert (
        "| vit | synthetic_gan | +0.0100 [+0.0100, +0.0100], ±0.0000; Holm ±0.0000 | beats oversampling (Holm p "
        "0.000) | +0.2100 [+0.2100, +0.2100], ±0.0000; Holm ±0.0000 | beats baseline (Holm p 0.000) |" in table
    )
    assert (
        "| vit | oversampled | — | — | +0.2000 [+0.2000, +0.2000], ±0.0000; Holm ±0.0000 | beats baseline (Holm p "
        "0.000) |" in table
    )


def test_holm_adjusts_step_down_and_keeps_the_input_order():
    from synthaug.metrics.verdicts import holm_adjusted

    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> kept monotone at 0.06
    adjusted = holm_adjusted([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjusted[4] == pytest.approx(0.02)
    assert math.isnan(adjusted[3])  # no test (one seed) is not counted
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_paired_p_value_is_the_test_the_t_interval_inverts():
    from scipy import stats

    from synthaug.metrics.verdicts import paired_p_value

    rng = np.random.default_rng(0)
    for _ in range(50):
        differences = list(rng.normal(0.02, 0.02, size=3))
        mean, s = np.mean(differences), np.std(differences, ddof=1)
        by_hand = 2 * stats.t.sf(abs(mean) / (s / math.sqrt(3)), df=2)
        assert paired_p_value(differences) == pytest.approx(by_hand, rel=1e-9)
        interval = t_interval(differences)
        assert (paired_p_value(differences) < 0.05) == (interval.low > 0 or interval.high < 0)
    assert paired_p_value([0.01, 0.01]) == 0.0 and paired_p_value([0.0, 0.0]) == 1.0
    assert math.isnan(paired_p_value([0.3]))


def test_a_gain_the_uncorrected_interval_shows_is_within_noise_after_holm_and_says_both():
    # Seeds 0-2; synthetic_gan is about 0.01 above baseline (p about 0.03 alone); the other comparisons are far
    # from significant, so Holm multiplies the smallest p by the 4 comparisons the table prints.
    baseline = {0: 0.50, 1: 0.60, 2: 0.70}
    results = [entry("baseline", s, v) for s, v in baseline.items()]
    results += [entry("oversampled", s, v + d) for (s, v), d in zip(baseline.items(), (0.05, -0.04, 0.0))]
    results += [entry("synthetic_gan", s, v + d) for (s, v), d in zip(baseline.items(), (0.010, 0.012, 0.008))]
    rows = {row["variant"]: row for row in verdict_rows(results)}
    gain = rows["synthetic_gan"]["comparisons"]["baseline"]
    assert gain.uncorrected == "beats baseline" and gain.p_value < 0.05
    assert gain.adjusted_p == pytest.approx(min(1.0, 4 * gain.p_value)) and gain.adjusted_p > 0.05
    assert gain.verdict == "within noise (3 seeds)"
    table = verdicts_markdown(list(rows.values()))
    assert "| vit | synthetic_gan |" in table and "vs baseline (Holm over 4)" in table
    assert f"| within noise (3 seeds) (Holm p {gain.adjusted_p:.3f}); uncorrected: beats baseline |" in table
    half = gain.difference.high - gain.difference.mean
    # the smallest gain Holm's strictest step (0.05 / 4) calls: a t statistic at that level's quantile
    smallest = stats.t.ppf(1 - 0.05 / 8, 2) * gain.difference.std / math.sqrt(3)
    assert gain.smallest == pytest.approx(smallest)
    assert stats.t.sf(gain.smallest / (gain.difference.std / math.sqrt(3)), 2) * 2 == pytest.approx(0.05 / 4)
    assert (
        f"+0.0100 [{gain.difference.low:+.4f}, {gain.difference.high:+.4f}], ±{half:.4f}; Holm ±{smallest:.4f} |"
        in table
    )


def test_newcombe_interval_matches_his_worked_example():
    from synthaug.metrics.verdicts import difference_interval

    # Newcombe (1998), Statistics in Medicine 17:873, table II, 56/70 - 48/80, method 10: 0.0524 to 0.3339
    low, high = difference_interval(56, 70, 48, 80)
    assert (low, high) == (pytest.approx(0.0524, abs=5e-5), pytest.approx(0.3339, abs=5e-5))


def binomial_tail(correct: int, total: int, p: float) -> float:
    return sum(math.comb(total, k) * p**k * (1 - p) ** (total - k) for k in range(correct, total + 1))


def hypergeometric_tail(table: list[list[int]]) -> float:
    """P(top-left >= observed) with the margins fixed: the one-sided Fisher exact p-value, by hand."""
    (a, b), (c, d) = table
    row, col, total = a + b, a + c, a + b + c + d
    return sum(math.comb(col, k) * math.comb(total - col, row - k) for k in range(a, min(row, col) + 1)) / math.comb(
        total, row
    )


def confusion_from(rates: np.ndarray, per_class: int) -> np.ndarray:
    """Counts of a judge that labels generated images of class i as j with probability rates[i, j]."""
    counts = np.rint(rates * per_class).astype(int)
    counts[np.arange(len(rates)), np.arange(len(rates))] += per_class - counts.sum(1)  # rows sum to per_class
    return counts


def test_a_judge_that_labels_everything_airplane_does_not_make_airplane_recognized():
    from synthaug.metrics.verdicts import class_recognition, recognized

    confusion = np.zeros((10, 10), dtype=int)
    confusion[:, 0] = 100  # every generated image, whatever its class, is called airplane
    reading = class_recognition(confusion, 0)
    assert (reading.own, reading.others, reading.margin) == (1.0, 1.0, 0.0)
    assert not recognized(reading, min_margin=0.1)
    assert not any(recognized(class_recognition(confusion, c), min_margin=0.1) for c in range(10))


def test_recognition_margin_its_test_and_interval():
    from synthaug.metrics.verdicts import class_recognition, difference_interval, recognized

    confusion = np.full((4, 4), 10)
    confusion[1] = [5, 30, 0, 5]  # 30 of 40 images of class 1 called 1; 30 of the other 120 called 1
    reading = class_recognition(confusion, 1)
    assert (reading.own, reading.others, reading.margin, reading.images) == (0.75, 0.25, 0.5, 40)
    assert (reading.low, reading.high) == difference_interval(30, 40, 30, 120)
    assert reading.p_value == pytest.approx(hypergeometric_tail([[30, 10], [30, 90]]), rel=1e-9)
    assert recognized(reading, min_margin=0.1)
    assert not recognized(reading, min_margin=0.6)  # a size of effect the param can demand


def test_one_generator_is_judged_alike_at_100_and_at_1000_images_a_class():
    from synthaug.metrics.verdicts import class_recognition, recognized

    rates = np.full((10, 10), 0.1)
    np.fill_diagonal(rates, 0.0)
    rates[0] = 0.5 / 9
    rates[0, 0] = 0.5  # class 0: clearly told apart from the rest
    rates[1] = 0.86 / 9
    rates[1, 1] = 0.14  # class 1: 14 % own against about 10 % from the others, a margin of about 0.04
    for i in range(2, 10):
        rates[i] /= rates[i].sum()
        rates[i] *= 0.9
        rates[i, i] = 0.1  # the rest: at chance
    decisions = {
        n: [recognized(class_recognition(confusion_from(rates, n), c), min_margin=0.1) for c in range(10)]
        for n in (100, 1000)
    }
    assert decisions[100] == decisions[1000] == [True] + [False] * 9
    # a one-sample test against 1/K would change its mind: 14 % of 1,000 beats chance at 5 %, 14 % of 100 does not
    assert binomial_tail(140, 1000, 0.1) < 0.05 < binomial_tail(14, 100, 0.1)


def test_seeds_needed_is_the_fewest_at_which_the_effect_is_established():
    from synthaug.metrics.verdicts import seeds_needed

    # differences with std 0.02: an effect of 0.02 needs t(0.975, n-1) / sqrt(n) < 1, first true at n = 7
    assert seeds_needed(0.02, 0.02) == 7
    assert stats.t.ppf(0.975, 5) / math.sqrt(6) > 1 > stats.t.ppf(0.975, 6) / math.sqrt(7)
    assert seeds_needed(0.02, 0.02, tests=8) > 7  # Holm over 8 tests asks for more
    assert seeds_needed(1.0, 1e-4, most=50) is None


def test_class_group_rows_join_the_family_of_tests():
    from synthaug.report.records import EntryResult as Result

    def grouped(variant: str, seed: int, f1: list[float]) -> Result:
        per_class = {c: {"f1": v, "recall": v} for c, v in zip("abcd", f1)}
        return Result("vit", variant, seed, {"macro_f1": float(np.mean(f1)), "per_class": per_class}, np.eye(4), [])

    results = [grouped("baseline", s, [0.9, 0.8, 0.1 + 0.01 * s, 0.2]) for s in range(3)]
    results += [grouped("oversampled", s, [0.85, 0.8, 0.3 + 0.02 * s, 0.4]) for s in range(3)]
    groups = {"many": ["a", "b"], "few": ["c", "d"]}
    rows = verdict_rows(results, groups=groups)
    assert [(r["variant"], r["classes"]) for r in rows] == [
        ("baseline", "all"),
        ("baseline", "many"),
        ("baseline", "few"),
        ("oversampled", "all"),
        ("oversampled", "many"),
        ("oversampled", "few"),
    ]
    few = rows[5]["comparisons"]["baseline"]
    gains = [np.mean([0.3 + 0.02 * s, 0.4]) - np.mean([0.1 + 0.01 * s, 0.2]) for s in range(3)]
    assert few.difference.mean == pytest.approx(np.mean(gains))
    table = verdicts_markdown(rows)
    assert "vs baseline (Holm over 6)" in table and "| vit | oversampled | few |" in table
