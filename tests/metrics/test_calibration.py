"""Expected calibration error and reliability bins against a by-hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from synthaug.metrics.calibration import calibration, pooled_reliability, top_label


def test_ece_of_five_predictions_equals_the_hand_computation():
    confidence = np.array([0.95, 0.95, 0.65, 0.65, 0.3])
    correct = np.array([True, False, True, True, False])
    ece, bins = calibration(confidence, correct, bins=15)
    # bins (14/15, 1]: accuracy 1/2, confidence 0.95; (9/15, 10/15]: 1 against 0.65; (4/15, 5/15]: 0 against 0.3
    assert ece == pytest.approx(2 / 5 * 0.45 + 2 / 5 * 0.35 + 1 / 5 * 0.3)  # 0.38
    assert [i for i, n in enumerate(bins["count"]) if n] == [4, 9, 14]
    assert bins["accuracy"][14] == 0.5 and bins["confidence"][9] == pytest.approx(0.65)


def test_ece_equals_a_loop_over_half_open_bins():
    rng = np.random.default_rng(0)
    confidence = np.concatenate([rng.uniform(0.1, 1.0, 2000), np.arange(1, 16) / 15])  # and every bin edge
    correct = rng.uniform(size=confidence.size) < confidence**2
    expected = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert calibration(confidence, correct)[0] == pytest.approx(expected, abs=1e-12)


def test_a_calibrated_classifier_reads_near_zero_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.2, 1.0, 200_000)
    calibrated = rng.uniform(size=confidence.size) < confidence
    assert calibration(confidence, calibrated)[0] < 0.01
    assert calibration(confidence, calibrated & (rng.uniform(size=confidence.size) < 0.5))[0] > 0.25


def test_top_label_is_the_logits_argmax_with_its_softmax_probability():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [-1000.0, 5.0, 5.0]], dtype=np.float32)
    predicted, confidence = top_label(logits)
    assert predicted.tolist() == [0, 2, 1]
    softmax = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert confidence == pytest.approx([softmax[0], np.exp(3) / (2 + np.exp(3)), 0.5])


def test_pooled_bins_equal_the_bins_of_the_pooled_samples():
    rng = np.random.default_rng(2)
    runs = [(rng.uniform(0.1, 1, 300), rng.uniform(size=300) < 0.6) for _ in range(3)]
    pooled = calibration(np.concatenate([c for c, _ in runs]), np.concatenate([k for _, k in runs]))[1]
    confidence, accuracy = pooled_reliability([calibration(c, k)[1] for c, k in runs])
    filled = [i for i, n in enumerate(pooled["count"]) if n]
    assert confidence == pytest.approx(np.array(pooled["confidence"])[filled], abs=1e-5)
    assert accuracy == pytest.approx(np.array(pooled["accuracy"])[filled], abs=1e-5)
