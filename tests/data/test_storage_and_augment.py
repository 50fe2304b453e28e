from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.params import AUGMENTATION_STAGES
from synthaug.data.augment import augment_batch, reference_augmentations
from synthaug.data.pixels import InputFormat, to_model_input
from synthaug.data.storage import (
    ImageSet,
    load_image_set,
    load_index_arrays,
    save_image_set,
    save_index_arrays,
)


def random_set(n: int = 6, size: int = 8, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, 3, n), ("a", "b", "c"))


def test_image_set_roundtrip(tmp_path):
    data = random_set()
    save_image_set(tmp_path / "train.npz", data)
    loaded = load_image_set(tmp_path / "train.npz")
    np.testing.assert_array_equal(loaded.images, data.images)
    np.testing.assert_array_equal(loaded.labels, data.labels)
    assert loaded.class_names == ("a", "b", "c") and loaded.labels.dtype == np.int64
    assert [p.name for p in tmp_path.iterdir()] == ["train.npz"]  # no temp file left beside it


def test_image_set_rejects_float_and_mismatched_labels():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(np.zeros((2, 4, 4, 3), dtype=np.float32), np.zeros(2, dtype=np.int64), ("a",))
    with pytest.raises(ValueError, match="does not match"):
        ImageSet(np.zeros((2, 4, 4, 3), dtype=np.uint8), np.zeros(3, dtype=np.int64), ("a",))


def test_missing_split_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the fetch stage first"):
        load_image_set(tmp_path / "train.npz")
    with pytest.raises(FileNotFoundError, match="run the imbalance stage first"):
        load_index_arrays(tmp_path / "splits.npz")


def test_index_arrays_roundtrip(tmp_path):
    save_index_arrays(tmp_path / "s.npz", {"train": np.array([3, 1]), "val": np.array([0])})
    loaded = load_index_arrays(tmp_path / "s.npz")
    assert loaded["train"].tolist() == [3, 1] and loaded["val"].tolist() == [0]


def test_augmentations_are_seeded_and_keep_shape():
    images = random_set(n=16, size=32).images
    first = augment_batch(images, reference_augmentations(0.5, seed=1))
    again = augment_batch(images, reference_augmentations(0.5, seed=1))
    other = augment_batch(images, reference_augmentations(0.5, seed=2))
    assert first.shape == images.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, images)


def test_probability_zero_is_identity():
    images = random_set(n=4, size=16).images
    np.testing.assert_array_equal(augment_batch(images, reference_augmentations(0.0, seed=0)), images)


def test_model_input_range_and_resize():
    images = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
    batch = to_model_input(images, InputFormat(8))
    assert batch.shape == (2, 3, 8, 8) and batch.dtype == torch.float32
    assert batch[0].min().item() == -1.0 and batch[1].max().item() == 1.0
    assert to_model_input(images, InputFormat(16)).shape == (2, 3, 16, 16)


def test_model_input_takes_each_channels_mean_and_std():
    images = np.full((1, 4, 4, 3), (51, 102, 204), np.uint8)  # 0.2, 0.4, 0.8 of the range
    imagenet = InputFormat(4, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    batch = to_model_input(images, imagenet)
    expected = [(v - m) / s for v, m, s in zip((0.2, 0.4, 0.8), imagenet.mean, imagenet.std)]
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor(expected), rtol=1e-6, atol=1e-6)


def test_augmentation_stages_keep_the_seed_order_and_add_occlusion():
    names = lambda compose: [type(t).__name__ for t in compose.transforms]  # noqa: E731
    assert names(reference_augmentations(0.5, seed=0)) == [
        "HorizontalFlip",
        "RandomBrightnessContrast",
        "HueSaturationValue",
        "Rotate",
        "GaussianBlur",
        "GaussNoise",
    ]
    chosen = reference_augmentations(0.5, 0, ["occlusion", "geometry"])
    assert names(chosen) == ["HorizontalFlip", "Rotate", "CoarseDropout"]
    assert all(t.p == 0.25 for t in reference_augmentations(0.25, 0, AUGMENTATION_STAGES).transforms)
    with pytest.raises(ValueError, match=r"unknown augmentation stage\(s\) \['blur'\]"):
        reference_augmentations(0.5, 0, ["geometry", "blur"])


def test_occlusion_blacks_out_holes_of_a_quarter_side_at_most():
    images = np.full((8, 32, 32, 3), 200, np.uint8)
    occluded = augment_batch(images, reference_augmentations(1.0, 0, ["occlusion"]))
    black = (occluded == 0).all(axis=-1)
    assert black.any(axis=(1, 2)).all()  # p = 1: every image gets a hole
    # one or two holes of at most 25 % of the side each: never more than 2 * 8 * 8 pixels
    assert (black.sum(axis=(1, 2)) <= 2 * 8 * 8).all()
    assert ((occluded == 0) | (occluded == 200)).all()  # nothing else changed


@pytest.mark.parametrize("size", [16, 56, 224])
def test_cpu_resize_stays_within_one_level_of_the_float_resize(size):
    import torch.nn.functional as F

    from synthaug.data.pixels import resize_pixels

    pixels = torch.from_numpy(random_set(n=5, size=32, seed=3).images).permute(0, 3, 1, 2).float()
    resized = resize_pixels(pixels, size)
    reference = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    assert resized.shape == (5, 3, size, size) and resized.dtype == torch.float32 and resized.is_contiguous()
    assert torch.equal(resized, resized.round())  # whole values, as the uint8 kernel writes them
    assert (resized - reference).abs().max() <= 1.01  # rounding plus the kernel's fixed-point weights
    assert (resized - reference).abs().mean() < 0.35  # rounding alone averages a quarter level
