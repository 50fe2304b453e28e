from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.params import SyntheticFilterParams
from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet
from synthaug.train.filter import (
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
    keep = agreement_mask(ByBrightness(), InputFormat(4), synthetic, min_confidence=0.9, batch_size=2)
    # dark as dark: kept; bright labelled dark: wrong class; barely bright: right class, low confidence
    assert keep.tolist() == [True, False, False, False]
    assert kept_fraction_per_class(synthetic.labels, keep, synthetic.class_names) == {"dark": 0.5, "bright": 0.0}


def test_disabled_filter_keeps_everything_and_enabled_needs_a_checkpoint():
    synthetic = images_of([0, 255], [0, 1])
    kept, report = filter_synthetic(
        synthetic, None, SyntheticFilterParams(enabled=False, min_confidence=0.5, judge="oversampled"), 8
    )
    assert len(kept) == 2 and report == {"synthetic_images": 2}
    with pytest.raises(FileNotFoundError, match="needs a real-data classifier checkpoint"):
        filter_synthetic(
            synthetic, None, SyntheticFilterParams(enabled=True, min_confidence=0.5, judge="oversampled"), 8
        )


def colour_set(counts: list[int], seed: int) -> ImageSet:
    """Class c is noise around its own dominant colour channel (8 px), `counts[c]` images of it."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    images = rng.normal(60, 25, (len(labels), 8, 8, 3))
    images[np.arange(len(labels)), :, :, labels] += 60
    return ImageSet(np.clip(images, 0, 255).astype(np.uint8), labels, ("red", "green", "blue"))


def trained_judge(folder, variant: str, train_set: ImageSet, params) -> None:
    from synthaug.core.seeding import seed_everything
    from synthaug.data.imbalance import oversample
    from synthaug.models.checkpoint import save_classifier
    from synthaug.train.classifier import prepare_training, train_classifier

    if variant == "oversampled":
        train_set = train_set.subset(oversample(np.arange(len(train_set)), train_set.labels, seed=0))
    seed_everything(0)
    setup = prepare_training("cnn", variant, params, train_set)
    result = train_classifier(setup, train_set, colour_set([10, 10, 10], seed=1), params, seed=0)
    save_classifier(folder, setup.spec, result.best_state)


def test_a_rebalanced_judge_keeps_the_minority_images_the_baseline_drops(tmp_path, tiny_train_params):
    params = tiny_train_params.model_copy(update={"epochs": 4, "device": "cpu"})
    imbalanced = colour_set([120, 120, 3], seed=0)  # blue is the minority
    for variant in ("baseline", "oversampled"):
        trained_judge(tmp_path / variant, variant, imbalanced, params)
    synthetic = colour_set([0, 0, 40], seed=2)  # good minority images: clearly blue
    kept = {}
    for variant in ("baseline", "oversampled"):
        settings = SyntheticFilterParams(enabled=True, min_confidence=0.5, judge=variant)
        _, report = filter_synthetic(synthetic, tmp_path / variant, settings, 16)
        assert report["synthetic_filter_judge"] == variant
        kept[variant] = report["synthetic_kept_fraction"]["blue"]
    assert kept["oversampled"] >= 0.9, kept
    assert kept["baseline"] <= 0.5, kept  # the imbalanced judge calls most blue images green or red (measured 0.025)


def test_full_is_refused_as_judge_and_the_judge_must_be_trained(project_params):
    from synthaug.core.errors import ParamsError
    from synthaug.core.param_rules import parse_section, validate_all
    from synthaug.core.params import TrainParams

    raw = dict(project_params["train"], synthetic_filter={"enabled": True, "min_confidence": 0.5, "judge": "full"})
    with pytest.raises(
        ParamsError, match=r"train\.synthetic_filter\.judge: 'full' trained on the images the imbalance removed"
    ):
        parse_section("train", raw, TrainParams)
    data = dict(
        project_params,
        train=dict(raw, synthetic_filter={"enabled": True, "min_confidence": 0.5, "judge": "logit_adjusted"}),
    )
    with pytest.raises(ParamsError, match=r"judge: 'logit_adjusted' is not in experiment.variants"):
        validate_all(data)


def test_a_missing_judge_checkpoint_names_the_judge(tmp_path):
    settings = SyntheticFilterParams(enabled=True, min_confidence=0.5, judge="oversampled")
    with pytest.raises(FileNotFoundError, match="judge: oversampled"):
        filter_synthetic(images_of([0], [0]), tmp_path / "nothing", settings, 8)
