from __future__ import annotations

import numpy as np
import pytest

from synthaug.data.imbalance import (
    ImbalanceError,
    exponential_fractions,
    keep_fractions,
    linear_fractions,
    make_splits,
    oversample,
    variant_indices,
)

CLASSES = tuple("abcde")


def labels_of(per_class: int = 100, num_classes: int = 5) -> np.ndarray:
    return np.repeat(np.arange(num_classes), per_class)


def test_linear_shape_is_the_reference_studys():
    np.testing.assert_allclose(linear_fractions(10, 0.1), np.arange(1, 11) / 10)


def test_exponential_shape_is_cifar10_lt():
    fractions = exponential_fractions(10, 100.0)
    assert fractions[0] == 1.0 and fractions[-1] == pytest.approx(0.01)
    assert fractions[5] == pytest.approx(100 ** (-5 / 9))


def test_explicit_shape_needs_one_fraction_per_class():
    np.testing.assert_allclose(
        keep_fractions("explicit", 2, min_fraction=0.1, imbalance_factor=1, fractions=[0.5, 1.0]), [0.5, 1.0]
    )
    with pytest.raises(ImbalanceError, match=r"imbalance\.fractions: need 3 fractions"):
        keep_fractions("explicit", 3, min_fraction=0.1, imbalance_factor=1, fractions=[0.5, 1.0])


def test_splits_counts_balance_and_disjointness():
    labels = labels_of()
    splits = make_splits(labels, CLASSES, linear_fractions(5, 0.2), val_per_class=10, subset_per_class=None, seed=3)
    assert np.bincount(labels[splits.val]).tolist() == [10] * 5
    assert np.bincount(labels[splits.full]).tolist() == [90] * 5
    assert np.bincount(labels[splits.train]).tolist() == [18, 36, 54, 72, 90]
    assert not set(splits.val) & set(splits.full)
    assert set(splits.train) <= set(splits.full)


def test_validation_from_removed_images_keeps_a_fraction_of_the_whole_class():
    labels = labels_of()  # 100 images a class
    splits = make_splits(
        labels, CLASSES, linear_fractions(5, 0.2), val_per_class=10, subset_per_class=None, seed=3, val_from="removed"
    )
    assert np.bincount(labels[splits.val]).tolist() == [10] * 5
    # the reference study's counts (fraction x the whole class), except the class kept whole, which gives up 10
    assert np.bincount(labels[splits.train]).tolist() == [20, 40, 60, 80, 90]
    assert np.bincount(labels[splits.full]).tolist() == [90] * 5
    assert not set(splits.val) & set(splits.full) and set(splits.train) <= set(splits.full)
    # the pool split of the same seed trains 10 % fewer images of every class
    pooled = make_splits(labels, CLASSES, linear_fractions(5, 0.2), val_per_class=10, subset_per_class=None, seed=3)
    assert np.bincount(labels[pooled.train]).tolist() == [18, 36, 54, 72, 90]


def test_subset_caps_pool_and_seed_is_deterministic():
    labels = labels_of()
    kwargs = dict(val_per_class=10, subset_per_class=40, seed=7)
    first = make_splits(labels, CLASSES, linear_fractions(5, 0.25), **kwargs)
    second = make_splits(labels, CLASSES, linear_fractions(5, 0.25), **kwargs)
    other = make_splits(labels, CLASSES, linear_fractions(5, 0.25), **dict(kwargs, seed=8))
    assert np.bincount(labels[first.full]).tolist() == [40] * 5
    assert np.bincount(labels[first.train]).tolist() == [10, 18, 25, 32, 40]
    np.testing.assert_array_equal(first.train, second.train)
    assert not np.array_equal(first.train, other.train)


def test_empty_class_is_named():
    labels = labels_of(per_class=12)
    with pytest.raises(ImbalanceError, match=r"class 'a' would be empty after imbalancing"):
        make_splits(labels, CLASSES, np.array([0.01, 1, 1, 1, 1]), val_per_class=2, subset_per_class=None, seed=0)
    with pytest.raises(
        ImbalanceError, match=r"class 'a' has 12 train images, not enough for imbalance\.val_per_class=20"
    ):
        make_splits(labels, CLASSES, np.ones(5), val_per_class=20, subset_per_class=None, seed=0)


def test_oversample_balances_with_original_members():
    labels = labels_of()
    imbalanced = np.concatenate([np.flatnonzero(labels == c)[: 10 * (c + 1)] for c in range(5)])
    balanced = oversample(imbalanced, labels, seed=0)
    assert np.bincount(labels[balanced]).tolist() == [50] * 5
    assert set(balanced) == set(imbalanced)  # only duplicates, nothing new
    np.testing.assert_array_equal(balanced, oversample(imbalanced, labels, seed=0))


def test_variant_indices():
    labels = labels_of()
    splits = {"train": np.arange(0, 300, 2), "full": np.arange(300), "val": np.arange(300, 500)}
    np.testing.assert_array_equal(variant_indices("baseline", splits, labels, 0), splits["train"])
    np.testing.assert_array_equal(variant_indices("full", splits, labels, 0), splits["full"])
    assert len(variant_indices("oversampled", splits, labels, 0)) == 150
    with pytest.raises(ImbalanceError, match="unknown variant 'smote'"):
        variant_indices("smote", splits, labels, 0)


def test_real_equal_draws_as_many_real_images_per_class_as_it_matches_from_all_of_train():
    labels = labels_of()
    val = np.arange(0, 500, 5)
    full = np.setdiff1d(np.arange(500), val)
    splits = {"train": full[::3], "full": full, "val": val}
    per_class = np.array([3, 3, 3, 3, 3])
    drawn = variant_indices("real_equal_gan", splits, labels, 0, per_class)
    assert np.bincount(labels[drawn], minlength=5).tolist() == [3] * 5
    assert set(drawn) <= set(full) and len(set(drawn)) == 15  # no repeats, none from validation
    assert not set(drawn) <= set(splits["train"])  # from all of train, not only the imbalanced set
    np.testing.assert_array_equal(drawn, variant_indices("real_equal_gan", splits, labels, 0, per_class))
    assert not np.array_equal(drawn, variant_indices("real_equal_gan", splits, labels, 1, per_class))
    with pytest.raises(ValueError, match="needs the per-class counts"):
        variant_indices("real_equal_gan", splits, labels, 0)
    pool = int(np.sum(labels[full] == 4))
    with pytest.raises(ImbalanceError, match=f"class 'e' has {pool} real training images, fewer than the 10000"):
        variant_indices("real_equal_gan", splits, labels, 0, np.array([1, 1, 1, 1, 10000]), list("abcde"))


def test_class_groups_split_the_demo_and_reference_counts_by_share_of_the_largest_class():
    from synthaug.data.imbalance import class_groups

    demo = {f"c{k}": 100 * (k + 1) for k in range(10)}  # 100 ... 1,000
    groups = class_groups(demo, 0.66, 0.34)
    assert groups == {
        "many": ["c9", "c8", "c7", "c6"],
        "medium": ["c5", "c4", "c3"],
        "few": ["c2", "c1", "c0"],
    }
    reference = {f"c{k}": 500 * (k + 1) for k in range(9)} | {"c9": 4500}  # validation taken from the largest
    assert [len(v) for v in class_groups(reference, 0.66, 0.34).values()] == [5, 2, 3]
    assert list(class_groups({"a": 10, "b": 10}, 0.66, 0.34)) == ["many"]  # an empty group is left out
