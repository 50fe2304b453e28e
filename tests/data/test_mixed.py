"""Real and generated images stored at different sizes, trained on as one set (synthaug.data.mixed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.data.mixed import MixedSizeImageSet, concat_image_sets
from synthaug.data.pixels import resize_pixels, resize_uint8, to_pixels
from synthaug.data.storage import ImageSet

NAMES = ("a", "b")


def image_set(count: int, size: int, seed: int, label: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    return ImageSet(images, np.full(count, label, np.int64), NAMES)


def test_sets_of_one_size_are_joined_and_of_two_sizes_kept_apart():
    real, same = image_set(5, 4, 0, 0), image_set(3, 4, 1, 1)
    joined = concat_image_sets(real, same)
    assert isinstance(joined, ImageSet) and joined.images.shape == (8, 4, 4, 3)
    mixed = concat_image_sets(real, image_set(3, 8, 2, 1))
    assert isinstance(mixed, MixedSizeImageSet)
    assert len(mixed) == 8 and mixed.image_size == 8 and mixed.labels.tolist() == [0] * 5 + [1] * 3
    assert mixed.class_counts().tolist() == [5, 3]
    assert concat_image_sets(real, image_set(0, 8, 3, 1)) is real
    with pytest.raises(ValueError, match="class names differ"):
        concat_image_sets(real, ImageSet(np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, np.int64), ("x", "y")))


def test_a_batch_comes_out_at_the_larger_size_in_the_order_asked():
    real, generated = image_set(5, 4, 0, 0), image_set(3, 8, 2, 1)
    mixed = concat_image_sets(real, generated)
    order = np.array([6, 0, 4, 7, 2])  # generated, real, real, generated, real
    batch = mixed.batch(order)
    assert batch.shape == (5, 8, 8, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[[0, 3]], generated.images[[1, 2]])  # stored at 8 px: untouched
    # the real ones by the classifiers' own input resize, rounded to whole levels
    expected = resize_pixels(to_pixels(real.images[[0, 4, 2]]), 8).round().to(torch.uint8).permute(0, 2, 3, 1)
    np.testing.assert_array_equal(batch[[1, 2, 4]], expected.numpy())
    assert mixed.labels[order].tolist() == [1, 0, 0, 1, 0]


def test_resize_uint8_keeps_a_uniform_image_uniform_and_an_empty_batch_empty():
    flat = np.full((2, 4, 4, 3), 77, np.uint8)
    assert (resize_uint8(flat, 12) == 77).all() and resize_uint8(flat, 12).shape == (2, 12, 12, 3)
    assert resize_uint8(flat, 4) is flat
    assert resize_uint8(flat[:0], 12).shape == (0, 12, 12, 3)


def test_the_digest_follows_every_part():
    real = image_set(5, 4, 0, 0)
    first, second = concat_image_sets(real, image_set(3, 8, 2, 1)), concat_image_sets(real, image_set(3, 8, 9, 1))
    assert first.digest() == concat_image_sets(real, image_set(3, 8, 2, 1)).digest()
    assert first.digest()["images"] != second.digest()["images"]
    assert first.digest()["labels"] == second.digest()["labels"]
