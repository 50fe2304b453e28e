"""The loss-side baselines: class-weighted CE, logit-adjusted CE, label smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthaug.core.param_rules import parse_section
from synthaug.core.params import ExperimentParams, TrainParams
from synthaug.core.variants import composed_variant
from synthaug.data.imbalance import variant_indices
from synthaug.train.losses import (
    LossSpec,
    balanced_class_weights,
    classification_loss,
    log_prior_offset,
    loss_for_variant,
)

LABELS = np.array([0, 0, 0, 1])


def test_balanced_weights_are_n_over_k_times_count():
    weights = balanced_class_weights(LABELS, 3)
    np.testing.assert_allclose(weights.numpy(), [4 / 9, 4 / 3, 0.0], rtol=1e-6)  # class 2 has no sample


def test_log_prior_offset():
    np.testing.assert_allclose(
        log_prior_offset(LABELS, 2, tau=2.0).numpy(), [2 * math.log(0.75), 2 * math.log(0.25)], rtol=1e-6
    )


def test_weighted_loss_is_the_weighted_mean_of_per_sample_losses():
    logits = torch.tensor([[2.0, 0.5], [0.1, 0.3], [1.0, -1.0]])
    targets = torch.tensor([0, 1, 1])
    weights = torch.tensor([0.5, 3.0])
    per_sample = -F.log_softmax(logits, 1)[torch.arange(3), targets]
    expected = (weights[targets] * per_sample).sum() / weights[targets].sum()
    got = classification_loss(logits, targets, LossSpec(class_weights=weights))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_logit_adjustment_applies_to_the_loss_only():
    logits = torch.tensor([[0.0, 0.0]])
    offset = torch.tensor([math.log(0.9), math.log(0.1)])
    # equal logits: plain CE is log 2 for either target; adjusted, the rare class's target costs more
    rare = classification_loss(logits, torch.tensor([1]), LossSpec(logit_offset=offset)).item()
    common = classification_loss(logits, torch.tensor([0]), LossSpec(logit_offset=offset)).item()
    assert rare == pytest.approx(-math.log(0.1)) and common == pytest.approx(-math.log(0.9))


def test_plain_spec_is_cross_entropy_with_smoothing():
    logits, targets = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 1, 0])
    expected = F.cross_entropy(logits, targets, label_smoothing=0.2)
    assert torch.equal(classification_loss(logits, targets, LossSpec(0.2)), expected)


def test_variants_pick_their_loss_and_the_imbalanced_set(project_params):
    raw = dict(
        project_params["train"],
        label_smoothing=0.0,
        loss_baselines={"logit_adjustment_tau": 1.5, "label_smoothing": 0.2},
    )
    params = parse_section("train", raw, TrainParams)
    assert loss_for_variant("baseline", LABELS, 2, params) == LossSpec(0.0)
    assert loss_for_variant("label_smoothed", LABELS, 2, params) == LossSpec(0.2)
    weighted = loss_for_variant("class_weighted", LABELS, 2, params)
    np.testing.assert_allclose(weighted.class_weights.numpy(), [2 / 3, 2.0], rtol=1e-6)
    adjusted = loss_for_variant("logit_adjusted", LABELS, 2, params)
    np.testing.assert_allclose(adjusted.logit_offset.numpy(), [1.5 * math.log(0.75), 1.5 * math.log(0.25)], rtol=1e-6)
    splits = {"train": np.array([3, 1]), "full": np.arange(6), "val": np.array([0])}
    for variant in ("class_weighted", "logit_adjusted", "label_smoothed"):
        assert variant_indices(variant, splits, np.zeros(6, dtype=int), 0).tolist() == [3, 1]
    experiment = dict(
        project_params["experiment"],
        variants=["baseline", "full", "class_weighted", "logit_adjusted", "label_smoothed"],
    )
    assert parse_section("experiment", experiment, ExperimentParams).variants[-1] == "label_smoothed"


@pytest.mark.parametrize("variant", ["class_weighted", "logit_adjusted"])
def test_rebalancing_losses_predict_the_rare_class_more_often(variant, project_params):
    # 9:1 overlapping 1-d classes; a logistic regression trained on them, tested on a balanced set
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 900), rng.normal(1.5, 1, 100)]).astype(np.float32)[:, None]
    y = np.repeat([0, 1], [900, 100])
    test_x = torch.from_numpy(
        np.concatenate([rng.normal(0, 1, 500), rng.normal(1.5, 1, 500)]).astype(np.float32)[:, None]
    )
    params = parse_section("train", project_params["train"], TrainParams)

    def rare_recall(spec: LossSpec) -> float:
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 2)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        for _ in range(200):
            optimizer.zero_grad()
            classification_loss(model(torch.from_numpy(x)), torch.from_numpy(y), spec).backward()
            optimizer.step()
        return float((model(test_x[500:]).argmax(1) == 1).float().mean())

    plain, rebalanced = rare_recall(LossSpec(0.0)), rare_recall(loss_for_variant(variant, y, 2, params))
    assert plain < 0.3 and rebalanced > plain + 0.3


def test_a_composed_variant_trains_with_its_remedys_loss(project_params):
    params = parse_section("train", project_params["train"], TrainParams)
    composed = loss_for_variant(composed_variant("gan", "logit_adjusted"), LABELS, 2, params)
    assert torch.equal(composed.logit_offset, loss_for_variant("logit_adjusted", LABELS, 2, params).logit_offset)
    weighted = loss_for_variant(composed_variant("ddpm", "class_weighted"), LABELS, 2, params)
    assert torch.equal(weighted.class_weights, balanced_class_weights(LABELS, 2))
    assert loss_for_variant("synthetic_gan", LABELS, 2, params) == LossSpec(params.label_smoothing)


@pytest.mark.parametrize("class_weights", [None, torch.tensor([1.0, 3.0])])
def test_sample_weights_scale_each_images_term_inside_the_same_mean(class_weights):
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.0], [0.0, 3.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 1, 0])
    spec = LossSpec(0.0, class_weights=class_weights)
    plain = classification_loss(logits, targets, spec)
    assert classification_loss(logits, targets, spec, torch.ones(4)) == pytest.approx(float(plain))
    weights = torch.tensor([1.0, 1.0, 0.25, 0.25])  # the last two are generated images at weight 0.25
    terms = F.cross_entropy(logits, targets, reduction="none")
    per_class = torch.ones(2) if class_weights is None else class_weights
    expected = (terms * per_class[targets] * weights).sum() / per_class[targets].sum()
    assert classification_loss(logits, targets, spec, weights) == pytest.approx(float(expected))
