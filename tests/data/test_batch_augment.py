"""The batched torch augmentations against albumentations: transform by transform with the same
parameters, and in distribution when each draws its own."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from synthaug.data import batch_augment as B
from synthaug.data.augment import (
    AlbumentationsAugmenter,
    PlainBatches,
    augment_batch,
    make_augmentation,
    reference_augmentations,
)
from synthaug.data.pixels import to_pixels


def photo_like(count: int, seed: int) -> np.ndarray:
    """Smooth colour images (upsampled 8x8 noise) plus grey and saturated patches: CIFAR-like statistics."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    images = np.stack([cv2.resize(s, (32, 32), interpolation=cv2.INTER_LINEAR) for s in small])
    images[:, :4, :4] = rng.integers(0, 256, (count, 1, 1, 1))  # grey corner: saturation 0
    images[:, -4:, -4:] = [255, 0, 0]
    return images


def as_batch(images: np.ndarray) -> torch.Tensor:
    return to_pixels(images).float()


def as_images(batch: torch.Tensor) -> np.ndarray:
    return batch.permute(0, 2, 3, 1).numpy()


def albumentations_each(images: np.ndarray, transforms: list[A.BasicTransform]) -> np.ndarray:
    return np.stack([A.Compose([t], seed=0)(image=image)["image"] for image, t in zip(images, transforms)]).astype(
        np.float64
    )


IMAGES = photo_like(24, seed=0)
NOISE_IMAGES = np.random.default_rng(1).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
values = np.random.default_rng(2)


@pytest.mark.parametrize("images", [IMAGES, NOISE_IMAGES], ids=["smooth", "noise"])
def test_flip_and_brightness_contrast_equal_albumentations(images):
    np.testing.assert_array_equal(as_images(B.flip_horizontal(as_batch(images))), images[:, :, ::-1])
    alpha, beta = values.uniform(0.8, 1.2, len(images)), values.uniform(-0.2, 0.2, len(images))
    reference = albumentations_each(
        images,
        [
            A.RandomBrightnessContrast(brightness_limit=(b, b), contrast_limit=(a - 1, a - 1), p=1)
            for a, b in zip(alpha, beta)
        ],
    )
    ours = B.brightness_contrast(as_batch(images), torch.tensor(alpha).float(), torch.tensor(beta * 255).float())
    np.testing.assert_array_equal(as_images(ours), reference)


@pytest.mark.parametrize("images", [IMAGES, NOISE_IMAGES], ids=["smooth", "noise"])
def test_hue_saturation_value_matches_albumentations(images):
    shifts = [values.uniform(-limit, limit, len(images)) for limit in (20, 30, 20)]
    reference = albumentations_each(
        images,
        [
            A.HueSaturationValue(hue_shift_limit=(h, h), sat_shift_limit=(s, s), val_shift_limit=(v, v), p=1)
            for h, s, v in zip(*shifts)
        ],
    )
    ours = as_images(B.shift_hsv(as_batch(images), *(torch.tensor(s).float() for s in shifts)))
    difference = ours - reference
    # OpenCV's fixed-point hue tables round a few ties the other way: one hue step (2 degrees) off
    assert (difference == 0).mean() > 0.98
    assert np.abs(difference).mean() < 0.05 and abs(difference.mean()) < 0.01


@pytest.fixture(scope="module")
def every_rgb_colour() -> tuple[np.ndarray, np.ndarray]:
    """All 2^24 colours as one 4096 x 4096 image, and the torch engine's HSV of it."""
    codes = np.arange(1 << 24, dtype=np.int32)
    colours = np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    return colours, as_images(B.rgb_to_hsv_uint8(as_batch(colours[None])))[0].astype(np.int32)


def test_rgb_to_hsv_is_the_exact_formula_rounded_half_up(every_rgb_colour):
    # What the torch engine follows: OpenCV's documented RGB2HSV formula in exact arithmetic, each quotient rounded
    # half up (integers here, so no CPU or library can move it): V = max, S = round(255 C / V),
    # H = round(30 (G - B) / C), 30 (B - R) / C + 60 or 30 (R - G) / C + 120 as R, G or B is the max, plus 180 if < 0.
    colours, ours = every_rgb_colour
    red, green, blue = np.moveaxis(colours.astype(np.int32), -1, 0)
    value = np.maximum(np.maximum(red, green), blue)
    chroma = value - np.minimum(np.minimum(red, green), blue)
    saturation = np.where(value > 0, (510 * chroma + value) // (2 * np.maximum(value, 1)), 0)
    sector = np.where(
        red == value, green - blue, np.where(green == value, blue - red + 2 * chroma, red - green + 4 * chroma)
    )
    hue = np.where(chroma > 0, (60 * sector + chroma) // (2 * np.maximum(chroma, 1)), 0)
    hue = np.where(hue < 0, hue + 180, hue)
    np.testing.assert_array_equal(ours, np.stack([hue, saturation, value], -1))


def test_rgb_to_hsv_is_opencv_but_for_its_fixed_point_rounding(every_rgb_colour):
    # OpenCV's uint8 RGB2HSV divides through 12-bit fixed-point reciprocal tables, so near a rounding boundary it can
    # land one step from the exact formula. Over all 2^24 colours, with OpenCV 4.14.0.94, 5.0.0.93 and 5.1.0.95 alike
    # on an AVX2 CPU (bench/opencv_hsv.py), that is 2.38 % of colours: hue in 1.65 %, saturation in 0.74 %, value never,
    # one step each. Another OpenCV kernel (another version, or a CPU that dispatches another one) shows up here.
    colours, ours = every_rgb_colour
    reference = cv2.cvtColor(colours, cv2.COLOR_RGB2HSV).astype(np.int32)
    hue_step = (reference[..., 0] - ours[..., 0] + 90) % 180 - 90  # hue is an angle: 179 and 0 are one step apart
    steps = np.stack([hue_step, reference[..., 1] - ours[..., 1], reference[..., 2] - ours[..., 2]], -1)
    context = f"OpenCV {cv2.__version__} on {cv2.getCPUFeaturesLine()}"
    assert np.abs(steps).max(axis=(0, 1)).tolist() == [1, 1, 0], context
    assert (steps != 0).any(-1).mean() < 0.025, context
    assert (steps[..., 0] != 0).mean() < 0.0175 and (steps[..., 1] != 0).mean() < 0.008, context


def test_hsv_to_rgb_matches_opencv():
    hsv = np.stack(np.meshgrid(np.arange(180), np.arange(256), np.arange(256), indexing="ij"), -1).astype(np.uint8)
    hsv = hsv.reshape(180 * 256, 256, 3)
    ours = as_images(B.hsv_uint8_to_rgb(as_batch(hsv[None])))[0]
    reference = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    # both compute in float32; 1,758 of the 11.8 million triples land one step apart (0.015 %)
    assert (ours != reference).any(-1).mean() < 0.0005 and np.abs(ours - reference).max() <= 1


@pytest.mark.parametrize("images", [IMAGES, NOISE_IMAGES], ids=["smooth", "noise"])
def test_rotation_matches_albumentations(images):
    degrees = values.uniform(-10, 10, len(images))
    degrees[0] = 10.0  # the largest angle reaches furthest into the reflected border
    reference = albumentations_each(
        images, [A.Rotate(limit=(d, d), border_mode=cv2.BORDER_REFLECT_101, p=1) for d in degrees]
    )
    ours = as_images(B.rotate(as_batch(images), torch.tensor(degrees).float()))
    assert (ours == reference).mean() > 0.999 and np.abs(ours - reference).max() <= 1


@pytest.mark.parametrize("images", [IMAGES, NOISE_IMAGES], ids=["smooth", "noise"])
def test_blur_matches_albumentations(images):
    sigma, size = values.uniform(0.5, 3.0, len(images)), values.integers(3, 8, len(images))
    reference = albumentations_each(
        images, [A.GaussianBlur(blur_limit=(k, k), sigma_limit=(s, s), p=1) for k, s in zip(size | 1, sigma)]
    )
    ours = as_images(
        B.gaussian_blur(as_batch(images), B.gaussian_kernels(torch.tensor(sigma).float(), torch.tensor(size) | 1))
    )
    assert (ours == reference).mean() > 0.999 and np.abs(ours - reference).max() <= 1


@pytest.mark.parametrize("images", [IMAGES, NOISE_IMAGES], ids=["smooth", "noise"])
def test_resized_crop_matches_albumentations(images):
    boxes = B.sample_crop_boxes(torch.Generator().manual_seed(4), len(images), 32, 32)
    crop = A.RandomResizedCrop(size=(32, 32), p=1)
    reference = np.stack([crop.apply(image, crop_coords=tuple(box)) for image, box in zip(images, boxes.tolist())])
    ours = as_images(B.resized_crops(as_batch(images), boxes))
    # OpenCV resizes uint8 with 11-bit fixed-point weights, ours in float: rounding differs by at most 1
    assert np.abs(ours - reference).max() <= 1 and (ours == reference).mean() > 0.85
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 32).all() and (boxes[:, 3] <= 32).all()
    assert ((widths * heights) >= 0.08 * 32 * 32 * 0.8).all()  # area at least the smallest fraction (rounded)


def test_noise_and_holes_equal_albumentations():
    noise = values.normal(0, 6, IMAGES.shape).astype(np.float32)
    reference = np.stack([A.GaussNoise(p=1).apply(image, noise_map=n) for image, n in zip(IMAGES, noise)])
    ours = B.add_noise(as_batch(IMAGES), torch.from_numpy(noise).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(as_images(ours), reference)

    dropout = A.CoarseDropout(
        num_holes_range=(1, 2), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25), fill=0, p=1
    )
    holes = B.BatchAugmenter(1.0, 0, ("occlusion",))._sample_holes(len(IMAGES), 32, 32)
    reference = []
    for image, image_holes in zip(IMAGES, holes.numpy()):
        used = image_holes[(image_holes[:, 2] > image_holes[:, 0]) & (image_holes[:, 3] > image_holes[:, 1])]
        reference.append(dropout.apply(image, holes=used, seed=0))
    np.testing.assert_array_equal(as_images(B.erase_holes(as_batch(IMAGES), holes)), np.stack(reference))


def image_statistics(before: np.ndarray, after: np.ndarray) -> dict[str, np.ndarray]:
    before, after = before.astype(np.float64), after.astype(np.float64)
    return {
        "mean shift": (after - before).mean(axis=(1, 2, 3)),
        "mean absolute change": np.abs(after - before).mean(axis=(1, 2, 3)),
        "contrast ratio": (after.std(axis=(1, 2, 3)) + 1) / (before.std(axis=(1, 2, 3)) + 1),
        "black pixels": (after == 0).all(-1).mean(axis=(1, 2)),
    }


@pytest.mark.parametrize(
    "stages",
    [
        ("crop",),
        ("geometry",),
        ("color",),
        ("blur_noise",),
        ("occlusion",),
        ("crop", "geometry", "color", "blur_noise", "occlusion"),
    ],
)
def test_each_stage_draws_the_albumentations_distribution(stages):
    """Two-sample Kolmogorov-Smirnov on per-image statistics: 600 images through each engine."""
    images = photo_like(600, seed=3)
    reference = augment_batch(images, reference_augmentations(0.7, 11, stages))
    ours = as_images(B.BatchAugmenter(0.7, 12, stages)(as_batch(images)))
    for name, expected in image_statistics(images, reference).items():
        observed = image_statistics(images, ours)[name]
        if np.ptp(expected) == 0 and np.ptp(observed) == 0:
            assert expected[0] == observed[0], name
            continue
        assert ks_2samp(expected, observed).pvalue > 0.001, f"{stages}: {name} differs from albumentations"
    unchanged = lambda out: (out == images).all(axis=(1, 2, 3)).mean()  # noqa: E731
    assert unchanged(ours) == pytest.approx(unchanged(reference), abs=0.06)


def test_a_wrong_parameter_range_is_detected():
    """The distribution test above can fail: a rotation limit of 20 degrees instead of 10 is caught."""
    images = photo_like(600, seed=3)
    reference = augment_batch(images, reference_augmentations(1.0, 11, ("geometry",)))
    augmenter = B.BatchAugmenter(1.0, 12, ("geometry",))
    wider = B.rotate(as_batch(images), torch.empty(600).uniform_(-20, 20, generator=torch.Generator().manual_seed(0)))
    change = lambda out: np.abs(out.astype(np.float64) - images).mean(axis=(1, 2, 3))  # noqa: E731
    assert ks_2samp(change(reference), change(as_images(augmenter(as_batch(images))))).pvalue > 0.001
    rotated_only = augment_batch(
        images, A.Compose([A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=1)], seed=0)
    )
    assert ks_2samp(change(rotated_only), change(as_images(wider))).pvalue < 1e-6


def test_seeded_resumable_and_identity_at_p_zero():
    batch = as_batch(IMAGES)
    first, again = B.BatchAugmenter(0.5, 1), B.BatchAugmenter(0.5, 1)
    output = first(batch)
    torch.testing.assert_close(output, again(batch), rtol=0, atol=0)
    assert not torch.equal(output, B.BatchAugmenter(0.5, 2)(batch))
    assert output.shape == batch.shape and output.min() >= 0 and output.max() <= 255
    assert torch.equal(output, output.round())  # whole uint8 values between transforms, as albumentations
    saved = first.get_state()
    following = first(batch)
    first.set_state(saved)
    torch.testing.assert_close(first(batch), following, rtol=0, atol=0)
    torch.testing.assert_close(B.BatchAugmenter(0.0, 1, B.AUGMENTATION_STAGES)(batch), batch, rtol=0, atol=0)
    assert torch.equal(batch, as_batch(IMAGES))  # the input is never changed in place


def test_engine_selection_and_errors():
    assert isinstance(make_augmentation("torch", 0.5, 0), B.BatchAugmenter)
    assert isinstance(make_augmentation("albumentations", 0.5, 0), AlbumentationsAugmenter)
    assert isinstance(make_augmentation("albumentations", 0.0, 0), PlainBatches)
    with pytest.raises(ValueError, match="unknown augmentation engine 'kornia'"):
        make_augmentation("kornia", 0.5, 0)
    with pytest.raises(ValueError, match=r"unknown augmentation stage\(s\) \['blur'\]"):
        B.BatchAugmenter(0.5, 0, ("geometry", "blur"))


@pytest.mark.parametrize(("engine", "p"), [("torch", 0.5), ("albumentations", 0.5), ("torch", 0.0)])
def test_every_engine_gives_each_rank_its_share_of_one_augmented_batch(engine, p):
    from synthaug.core.distributed import Ranks

    cpu = torch.device("cpu")
    whole = make_augmentation(engine, p, 4).batch_pixels(IMAGES[:9], cpu)
    second = make_augmentation(engine, p, 4).batch_pixels(IMAGES[:9], cpu, Ranks(rank=1, world_size=2))
    size = IMAGES.shape[1]
    assert whole.shape == (9, 3, size, size) and second.shape == (4, 3, size, size)
    assert whole.dtype == torch.float32 and whole.min() >= 0 and whole.max() <= 255
    torch.testing.assert_close(whole, whole.round(), rtol=0, atol=0)  # whole pixel values
    torch.testing.assert_close(second, whole[1::2], rtol=0, atol=0)


@pytest.mark.parametrize("engine", ["torch", "albumentations"])
def test_every_engine_resumes_its_random_stream(engine):
    cpu = torch.device("cpu")
    augmenter = make_augmentation(engine, 0.5, 4)
    augmenter.batch_pixels(IMAGES[:9], cpu)
    saved = augmenter.get_state()
    following = augmenter.batch_pixels(IMAGES[:9], cpu)
    fresh = make_augmentation(engine, 0.5, 99)
    fresh.set_state(saved)
    torch.testing.assert_close(fresh.batch_pixels(IMAGES[:9], cpu), following, rtol=0, atol=0)
