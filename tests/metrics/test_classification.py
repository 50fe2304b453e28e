from __future__ import annotations

import numpy as np
import pytest

from synthaug.metrics.classification import (
    classification_report,
    confusion_matrix,
    macro_f1,
    normalize_rows,
    per_class_scores,
)

# 3 classes, hand-worked: class 0 all right; class 1 one of two right (other -> 2); class 2 never predicted right.
ACTUAL = np.array([0, 0, 1, 1, 2, 2])
PREDICTED = np.array([0, 0, 1, 2, 0, 1])


def test_confusion_matrix_known_counts():
    expected = [[2, 0, 0], [0, 1, 1], [1, 1, 0]]
    assert confusion_matrix(ACTUAL, PREDICTED, 3).tolist() == expected


def test_per_class_scores_by_hand():
    scores = per_class_scores(confusion_matrix(ACTUAL, PREDICTED, 3))
    np.testing.assert_allclose(scores["precision"], [2 / 3, 1 / 2, 0.0])
    np.testing.assert_allclose(scores["recall"], [1.0, 1 / 2, 0.0])
    np.testing.assert_allclose(scores["f1"], [0.8, 0.5, 0.0])
    assert macro_f1(ACTUAL, PREDICTED, 3) == pytest.approx(1.3 / 3)


def test_report_contents():
    report = classification_report(ACTUAL, PREDICTED, ("a", "b", "c"))
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["macro_f1"] == pytest.approx(round(1.3 / 3, 6))
    # weighted by support 2, 2, 2: the same as the macro mean here
    assert report["weighted_f1"] == pytest.approx(round(1.3 / 3, 6))
    assert report["per_class"]["a"] == {"precision": pytest.approx(0.666667), "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["num_samples"] == 6


def test_unseen_class_has_zero_scores_not_nan():
    report = classification_report(np.array([0, 0]), np.array([0, 0]), ("a", "b"))
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == 0.5


def test_weighted_f1_weights_each_class_by_its_support():
    # class 0: 3 samples, all right (F1 1); class 1: 1 sample, predicted 0 (F1 0); precision of class 0 is 3/4
    actual, predicted = np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])
    report = classification_report(actual, predicted, ("a", "b"))
    f1_a = 2 * 0.75 * 1.0 / 1.75
    assert report["weighted_f1"] == pytest.approx(round((3 * f1_a + 1 * 0.0) / 4, 6))
    assert report["macro_f1"] == pytest.approx(round(f1_a / 2, 6))
    assert classification_report(np.array([], dtype=int), np.array([], dtype=int), ("a",))["weighted_f1"] == 0.0


def test_normalized_rows_are_recall():
    normalized = normalize_rows(np.array([[2, 0], [1, 3], [0, 0]]))
    np.testing.assert_allclose(normalized, [[1, 0], [0.25, 0.75], [0, 0]])


def test_perfect_predictions():
    labels = np.arange(10) % 4
    report = classification_report(labels, labels, tuple("abcd"))
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0


def test_group_scores_equal_scikit_learns_macro_average_over_the_groups_classes():
    from sklearn.metrics import f1_score, recall_score

    from synthaug.metrics.classification import group_scores

    rng = np.random.default_rng(0)
    actual, predicted = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    predicted[:120] = actual[:120]  # better than chance, unevenly so
    names = tuple("abcdef")
    per_class = classification_report(actual, predicted, names)["per_class"]
    groups = {"many": ["a", "b"], "medium": ["c"], "few": ["d", "e", "f"]}
    scores = group_scores(per_class, groups)
    for group, members in groups.items():
        labels = [names.index(name) for name in members]
        assert scores[group]["macro_f1"] == pytest.approx(
            f1_score(actual, predicted, labels=labels, average="macro"), abs=1e-6
        )
        assert scores[group]["recall"] == pytest.approx(
            recall_score(actual, predicted, labels=labels, average="macro"), abs=1e-6
        )
