from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.data.storage import ImageSet
from synthaug.params import SyntheticFilterParams
from synthaug.synth.filter import (
    agreement_mask,
    filter_synthetic,
    kept_fraction_per_class,
)


class ByBrightness(torch.nn.Module):
    """Predicts class 0 for dark images and class 1 for bright ones, confidence growing with contrast."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        brightness = pixels.mean(dim=(1, 2, 3))
        return torch.stack([-4 * brightness, 4 * brightness], dim=1)


def images_of(levels: list[int], labels: list[int]) -> ImageSet:
    images = np.stack([np.full((4, 4, 3), level, np.uint8) for level in levels])
    return ImageSet(images, np.array(labels), ("dark", "bright"))


def test_agreement_drops_wrong_class_and_low_confidence():
    synthetic = images_of([0, 255, 140, 0], [0, 0, 1, 1])
    keep = agreement_mask(ByBrightness(), 4, synthetic, min_confidence=0.9, batch_size=2)
    # dark as dark: kept; bright labelled dark: wrong class; barely bright: right class, low confidence
    assert keep.tolist() == [True, False, False, False]
    assert kept_fraction_per_class(synthetic.labels, keep, synthetic.class_names) == {"dark": 0.5, "bright": 0.0}


def test_disabled_filter_keeps_everything_and_enabled_needs_a_checkpoint():
    synthetic = images_of([0, 255], [0, 1])
    kept, report = filter_synthetic(synthetic, None, SyntheticFilterParams(enabled=False, min_confidence=0.5), 8)
    assert len(kept) == 2 and report == {"synthetic_images": 2}
    with pytest.raises(FileNotFoundError, match="needs a real-data classifier checkpoint"):
        filter_synthetic(synthetic, None, SyntheticFilterParams(enabled=True, min_confidence=0.5), 8)
