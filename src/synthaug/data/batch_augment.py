"""The reference study's augmentations on whole batches in torch, on the batch's device: the same distribution as
`synthaug.data.augment.reference_augmentations` (albumentations, one image at a time), at batch speed.

Each transform is a pure function of the images and its per-image parameters, written to give what the
albumentations 2.x transform gives for the same parameters, including where it rounds or truncates to
uint8 between transforms (tests/data/test_batch_augment.py compares them parameter for parameter).
Images are float tensors (N, 3, H, W) holding uint8 values 0..255. Every random draw comes from one
seeded CPU generator, so a seed gives the same batches on the CPU and on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthaug.core.devices import to_device
from synthaug.core.distributed import Ranks, rank_share
from synthaug.core.params import AUGMENTATION_STAGES
from synthaug.data.pixels import to_pixels

# The albumentations ranges the reference study ran with (see reference_augmentations).
BRIGHTNESS_LIMIT = 0.2
CONTRAST_LIMIT = 0.2
HUE_SHIFT_LIMIT = 20.0  # in OpenCV's uint8 hue units (2 degrees)
SATURATION_SHIFT_LIMIT = 30.0
VALUE_SHIFT_LIMIT = 20.0
ROTATE_LIMIT_DEGREES = 10.0
BLUR_SIGMA_RANGE = (0.5, 3.0)
BLUR_KERNEL_RANGE = (3, 7)
NOISE_STD_RANGE = (0.012, 0.028)  # fraction of 255
HOLE_COUNT_RANGE = (1, 2)
HOLE_SIDE_RANGE = (0.1, 0.25)  # fraction of the image side
CROP_SCALE_RANGE = (0.08, 1.0)  # RandomResizedCrop: fraction of the image's area
CROP_RATIO_RANGE = (3 / 4, 4 / 3)  # width / height
CROP_ATTEMPTS = 10


def check_stages(stages: Sequence[str]) -> None:
    """Both engines accept the same augmentation stages (params.AUGMENTATION_STAGES)."""
    unknown = sorted(set(stages) - set(AUGMENTATION_STAGES))
    if unknown:
        raise ValueError(f"unknown augmentation stage(s) {unknown} (allowed: {', '.join(AUGMENTATION_STAGES)})")


def _round(images: torch.Tensor) -> torch.Tensor:
    """OpenCV's saturate_cast to uint8: round half up, then clip."""
    return images.add(0.5).floor_().clamp_(0, 255)


def _truncate(images: torch.Tensor) -> torch.Tensor:
    """numpy's astype(uint8) after a clip, as albucore does for look-up tables and noise."""
    return images.clamp(0, 255).floor_()


def flip_horizontal(images: torch.Tensor) -> torch.Tensor:
    return images.flip(-1)


def brightness_contrast(images: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """x * alpha + beta (beta in pixel values): RandomBrightnessContrast with brightness_by_max."""
    return _truncate(images * alpha.view(-1, 1, 1, 1) + beta.view(-1, 1, 1, 1))


def _wrap(values: torch.Tensor, period: float) -> torch.Tensor:
    """values modulo period (torch.remainder is several times slower on the CPU)."""
    return values.sub_(torch.floor(values / period).mul_(period))


def rgb_to_hsv_uint8(images: torch.Tensor) -> torch.Tensor:
    """OpenCV's COLOR_RGB2HSV on uint8: H in 0..179 (2-degree units), S and V in 0..255."""
    red, green, blue = images.unbind(1)
    value = images.amax(1)
    chroma = value - images.amin(1)
    saturation = (chroma * 255).div_(value.clamp(min=1)).add_(0.5).floor_()
    # OpenCV takes red when it is the brightest, else green, else blue
    red_top = (red == value).float()
    green_top = (green == value).float().mul_(1 - red_top)
    blue_top = 1 - red_top - green_top
    numerator = red_top * (green - blue) + green_top * (blue - red) + blue_top * (red - green)
    hue = numerator.mul_(30).div_(chroma.clamp(min=1)).add_(green_top * 60 + blue_top * 120).add_(0.5).floor_()
    hue.add_((hue < 0).float().mul_(180))
    return torch.stack([hue, saturation, value], 1)


# By hue sector (60 degrees), each channel is v (1 - s ramp) with ramp = base + slope * f, f the position
# in the sector: 0, 1, f or 1 - f. Rows: red, green, blue.
HSV_RAMP_BASE = torch.tensor([[0.0, 0, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0]])
HSV_RAMP_SLOPE = torch.tensor([[0.0, 1, 0, 0, -1, 0], [-1, 0, 0, 1, 0, 0], [0, 0, -1, 0, 0, 1]])


def hsv_uint8_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """OpenCV's COLOR_HSV2RGB on uint8, computed as OpenCV does: float32 on [0, 1], each channel one of
    v, v(1-s), v(1-s f), v(1-s(1-f)), truncated at the end. The ramps are exact (products with 0/1/-1,
    sums with a zero term), so the result is OpenCV's bit for bit."""
    hue = hsv[:, 0:1] * (1 / 30)  # in sectors
    saturation, value = hsv[:, 1:2] * (1 / 255), hsv[:, 2:3] * (1 / 255)
    sector = hue.floor()
    fraction = hue - sector
    index = sector.long()
    base, slope = HSV_RAMP_BASE.to(hsv.device), HSV_RAMP_SLOPE.to(hsv.device)
    ramp = torch.cat([base[channel].take(index) + slope[channel].take(index) * fraction for channel in range(3)], 1)
    return (1 - saturation * ramp).mul_(value).mul_(255).floor_()


def shift_hsv(
    images: torch.Tensor, hue_shift: torch.Tensor, sat_shift: torch.Tensor, val_shift: torch.Tensor
) -> torch.Tensor:
    """HueSaturationValue: hue rotated modulo 180, saturation and value shifted by whole steps (albucore
    truncates the shift), grey pixels kept grey."""
    hue, saturation, value = rgb_to_hsv_uint8(images).unbind(1)
    hue = _wrap(hue + hue_shift.view(-1, 1, 1), 180).floor_()
    grey = saturation == 0
    saturation = saturation.add_(sat_shift.trunc().view(-1, 1, 1)).clamp_(0, 255).masked_fill_(grey, 0)
    value = value.add_(val_shift.trunc().view(-1, 1, 1)).clamp_(0, 255)
    return hsv_uint8_to_rgb(torch.stack([hue, saturation, value], 1))


def _reflect_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), repeated for pads wider than the image."""
    while pad > 0:
        step = min(pad, images.shape[-1] - 1, images.shape[-2] - 1)
        images = F.pad(images, (step, step, step, step), mode="reflect")
        pad -= step
    return images


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate about the image centre, bilinear, border reflected (101): albumentations' Rotate with
    border_mode=BORDER_REFLECT_101 and the canvas kept."""
    _, _, height, width = images.shape
    # the farthest a pixel centre moves under the largest rotation in the batch, plus the bilinear neighbour
    radius = math.hypot(height, width) / 2
    pad = math.ceil(2 * radius * math.sin(math.radians(float(degrees.abs().max()) / 2))) + 2
    padded = _reflect_pad(images, pad)
    radians = torch.deg2rad(degrees).view(-1, 1, 1)
    cos, sin = torch.cos(radians), torch.sin(radians)
    centre_y, centre_x = height / 2 - 0.5, width / 2 - 0.5
    ys, xs = torch.meshgrid(
        torch.arange(height, device=images.device, dtype=images.dtype) - centre_y,
        torch.arange(width, device=images.device, dtype=images.dtype) - centre_x,
        indexing="ij",
    )
    # albumentations maps source to destination with [[cos, sin], [-sin, cos]]; sampling needs its inverse
    source_x = cos * xs - sin * ys + centre_x + pad
    source_y = sin * xs + cos * ys + centre_y + pad
    grid = torch.stack([source_x / (padded.shape[-1] - 1) * 2 - 1, source_y / (padded.shape[-2] - 1) * 2 - 1], -1)
    warped = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return _round(warped)


def gaussian_kernels(sigma: torch.Tensor, kernel_size: torch.Tensor) -> torch.Tensor:
    """One normalized 1-D Gaussian per image, zero-padded to the largest size: (N, max_size)."""
    half = BLUR_KERNEL_RANGE[1] // 2
    taps = torch.arange(-half, half + 1, dtype=sigma.dtype, device=sigma.device)
    kernels = torch.exp(-0.5 * (taps / sigma.view(-1, 1)) ** 2)
    kernels = torch.where(taps.abs() <= (kernel_size.view(-1, 1) // 2), kernels, torch.zeros_like(kernels))
    return kernels / kernels.sum(1, keepdim=True)


def gaussian_blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable convolution, a kernel per image, border reflected (101), rounded: GaussianBlur.

    As sums of shifted slices: a grouped conv2d would rebuild its oneDNN primitive for every new number
    of chosen images, which costs more than the convolution itself.
    """
    height, width = images.shape[-2:]
    taps = kernels.shape[1]
    weights = kernels.view(-1, 1, 1, 1, taps)
    padded = _reflect_pad(images, taps // 2)
    rows = padded[..., 0:width] * weights[..., 0]
    for tap in range(1, taps):
        rows += padded[..., tap : tap + width] * weights[..., tap]
    blurred = rows[..., 0:height, :] * weights[..., 0]
    for tap in range(1, taps):
        blurred += rows[..., tap : tap + height, :] * weights[..., tap]
    return _round(blurred)


def add_noise(images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """GaussNoise: per-pixel and channel noise, truncated to whole values (as albucore's uint8 add does); clipped."""
    return (images + noise.trunc()).clamp_(0, 255)


def erase_holes(images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """CoarseDropout with fill 0: `holes` (N, K, 4) as x_min, y_min, x_max, y_max; empty boxes erase nothing."""
    _, _, height, width = images.shape
    ys = torch.arange(height, device=images.device).view(1, 1, height, 1)
    xs = torch.arange(width, device=images.device).view(1, 1, 1, width)
    x_min, y_min, x_max, y_max = (holes[..., index].view(*holes.shape[:2], 1, 1) for index in range(4))
    inside = ((ys >= y_min) & (ys < y_max) & (xs >= x_min) & (xs < x_max)).any(1, keepdim=True)
    return images.masked_fill(inside, 0.0)


def resized_crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each image's box (x_min, y_min, x_max, y_max) resized back to the image's size: bilinear with half-pixel
    centres, as OpenCV's INTER_LINEAR (RandomResizedCrop's default), rounded to uint8 values."""
    _, _, height, width = images.shape
    out = torch.empty_like(images)
    for index, (x_min, y_min, x_max, y_max) in enumerate(boxes.tolist()):
        crop = images[index : index + 1, :, y_min:y_max, x_min:x_max]
        if crop.shape[-2:] == (height, width):
            out[index] = crop[0]
            continue
        resized = F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)
        out[index] = resized[0].round().clamp(0, 255)
    return out


def sample_crop_boxes(generator: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """RandomResizedCrop's boxes: up to 10 draws of an area fraction and a log-uniform aspect ratio, the first that
    fits placed uniformly; the whole image (a square's centre crop) when none fits."""
    area = _uniform(generator, count * CROP_ATTEMPTS, *CROP_SCALE_RANGE).double().view(count, CROP_ATTEMPTS)
    log_ratio = _uniform(generator, count * CROP_ATTEMPTS, *(math.log(r) for r in CROP_RATIO_RANGE))
    ratio = log_ratio.double().view(count, CROP_ATTEMPTS).exp()
    target = area * height * width
    crop_widths, crop_heights = (target * ratio).sqrt().round().long(), (target / ratio).sqrt().round().long()
    fits = (crop_widths > 0) & (crop_widths <= width) & (crop_heights > 0) & (crop_heights <= height)
    first = fits.int().argmax(dim=1)
    found = fits.any(dim=1)
    crop_width = torch.where(found, crop_widths[torch.arange(count), first], torch.tensor(width))
    crop_height = torch.where(found, crop_heights[torch.arange(count), first], torch.tensor(height))
    starts = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    y_min = ((height - crop_height + 1) * starts[:, 0]).long()
    x_min = ((width - crop_width + 1) * starts[:, 1]).long()
    centre_y, centre_x = (height - crop_height) // 2, (width - crop_width) // 2
    y_min, x_min = torch.where(found, y_min, centre_y), torch.where(found, x_min, centre_x)
    return torch.stack([x_min, y_min, x_min + crop_width, y_min + crop_height], -1)


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(count, generator=generator, dtype=torch.float64).mul_(high - low).add_(low).float()


@dataclass
class BatchAugmenter:
    """The reference augmentations of `stages`, each applied to an image with probability `p`, in the reference study's
    order: resized crop, flip, brightness/contrast, hue/saturation/value, rotate, blur, noise, occlusion."""

    p: float
    seed: int
    stages: tuple[str, ...] = ("geometry", "color", "blur_noise")

    def __post_init__(self) -> None:
        check_stages(self.stages)
        self.generator = torch.Generator().manual_seed(self.seed)

    def get_state(self) -> list:
        return [self.generator.get_state()]

    def set_state(self, state: list) -> None:
        self.generator.set_state(state[0])

    def batch_pixels(self, images: np.ndarray, device: torch.device, ranks: Ranks = Ranks()) -> torch.Tensor:
        """Augmented on `device` (the uint8 batch is copied over first), then this rank's share."""
        return rank_share(self(to_device(to_pixels(images), device).float()), ranks)

    def _chosen(self, count: int) -> torch.Tensor:
        return (torch.rand(count, generator=self.generator) < self.p).nonzero().flatten()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Augmented copy of a float batch (N, 3, H, W) of uint8 values, on the batch's device."""
        images = images.clone()
        count, _, height, width = images.shape
        device, generator = images.device, self.generator

        def apply_drawn(chosen: torch.Tensor, transform, *drawn: torch.Tensor) -> None:
            """`transform` on the chosen images, with arguments drawn for those images only."""
            if len(chosen):
                on_device = chosen.to(device)
                images[on_device] = transform(images[on_device], *(a.to(device) for a in drawn))

        def apply(chosen: torch.Tensor, transform, *arguments: torch.Tensor) -> None:
            """`transform` on the chosen images, with arguments drawn for the whole batch."""
            apply_drawn(chosen, transform, *(a[chosen] for a in arguments))

        if "crop" in self.stages:
            chosen = self._chosen(count)
            apply(chosen, resized_crops, sample_crop_boxes(generator, count, height, width))
        if "geometry" in self.stages:
            apply(self._chosen(count), flip_horizontal)
        if "color" in self.stages:
            chosen = self._chosen(count)
            alpha = 1 + _uniform(generator, count, -CONTRAST_LIMIT, CONTRAST_LIMIT)
            beta = _uniform(generator, count, -BRIGHTNESS_LIMIT, BRIGHTNESS_LIMIT) * 255
            apply(chosen, brightness_contrast, alpha, beta)
            chosen = self._chosen(count)
            shifts = [
                _uniform(generator, count, -limit, limit)
                for limit in (HUE_SHIFT_LIMIT, SATURATION_SHIFT_LIMIT, VALUE_SHIFT_LIMIT)
            ]
            apply(chosen, shift_hsv, *shifts)
        if "geometry" in self.stages:
            chosen = self._chosen(count)
            apply(chosen, rotate, _uniform(generator, count, -ROTATE_LIMIT_DEGREES, ROTATE_LIMIT_DEGREES))
        if "blur_noise" in self.stages:
            chosen = self._chosen(count)
            sigma = _uniform(generator, count, *BLUR_SIGMA_RANGE)
            # albumentations draws any integer size in the range and rounds an even one up to odd
            size = torch.randint(BLUR_KERNEL_RANGE[0], BLUR_KERNEL_RANGE[1] + 1, (count,), generator=generator)
            apply(chosen, gaussian_blur, gaussian_kernels(sigma, size | 1))
            chosen = self._chosen(count)
            std = _uniform(generator, count, *NOISE_STD_RANGE) * 255
            if len(chosen):  # noise drawn for the chosen images only: the largest draw of all
                noise = torch.randn((len(chosen), *images.shape[1:]), generator=generator) * std[chosen].view(
                    -1, 1, 1, 1
                )
                apply_drawn(chosen, add_noise, noise)
        if "occlusion" in self.stages:
            chosen = self._chosen(count)
            apply(chosen, erase_holes, self._sample_holes(count, height, width))
        return images

    def _sample_holes(self, count: int, height: int, width: int) -> torch.Tensor:
        generator, (fewest, most) = self.generator, HOLE_COUNT_RANGE
        hole_count = torch.randint(fewest, most + 1, (count, 1), generator=generator)
        hole_heights = (height * _uniform(generator, count * most, *HOLE_SIDE_RANGE)).long().view(count, most)
        hole_widths = (width * _uniform(generator, count * most, *HOLE_SIDE_RANGE)).long().view(count, most)
        y_min = (torch.rand(count, most, generator=generator) * (height - hole_heights + 1)).long()
        x_min = (torch.rand(count, most, generator=generator) * (width - hole_widths + 1)).long()
        used = torch.arange(most).view(1, most) < hole_count
        # an unused hole is an empty box
        return torch.stack(
            [
                x_min,
                y_min,
                torch.where(used, x_min + hole_widths, x_min),
                torch.where(used, y_min + hole_heights, y_min),
            ],
            -1,
        )
