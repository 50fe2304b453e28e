"""The GAN's limited-data options: DiffAugment, transitional conditioning and LeCam, each checked by hand and
through a training step, and each shown to leave training as it was when switched off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.errors import ParamsError
from synthaug.core.generator_params import TrainGeneratorParams
from synthaug.core.param_rules import parse_section
from synthaug.generators.diff_augment import colour, cutout, diff_augment, translate
from synthaug.generators.gan import MODE_SEEKING_EPSILON, conditioning_weight, lecam_penalty, mode_seeking_penalty
from synthaug.generators.training import build_trainer

POLICY = ["color", "translation", "cutout"]


def images_batch(count: int = 6, size: int = 8) -> torch.Tensor:
    return torch.rand((count, 3, size, size), generator=torch.Generator().manual_seed(1)) * 2 - 1


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_diff_augment_is_differentiable_seeded_and_empty_when_off():
    images = images_batch().requires_grad_()
    augmented = diff_augment(images, POLICY, seeded())
    (augmented * torch.randn_like(augmented)).sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    torch.testing.assert_close(diff_augment(images, POLICY, seeded()), augmented.detach(), rtol=0, atol=0)
    assert not torch.equal(diff_augment(images, POLICY, seeded(1)), augmented.detach())
    plain = images_batch()
    assert diff_augment(plain, [], seeded()) is plain


def test_translation_shifts_whole_pixels_and_fills_zeros():
    images = images_batch(count=64)
    shifted = translate(images, seeded())
    for original, moved in zip(images, shifted):
        found = [
            (dy, dx)
            for dy in range(-1, 2)
            for dx in range(-1, 2)
            if torch.equal(
                moved[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)],
                original[:, max(0, dy) : 8 + min(0, dy), max(0, dx) : 8 + min(0, dx)],
            )
        ]
        assert found, "each image is its original shifted by at most 1 pixel (1/8 of 8) each way"
    assert (shifted == 0).any()  # some shift uncovered a border, filled with 0


def test_cutout_zeroes_one_square_of_half_the_side():
    images = torch.ones((32, 3, 8, 8))
    holes = (cutout(images, seeded()) == 0).all(1).float()  # zeroed on every channel
    sizes = holes.sum((1, 2))
    assert sizes.max() == 16 and sizes.min() >= 4  # a 4x4 square, clipped where it overhangs the border
    assert (holes.sum(1).amax(1) <= 4).all() and (holes.sum(2).amax(1) <= 4).all()


def test_colour_jitter_changes_brightness_saturation_and_contrast_per_image():
    images = images_batch(count=16)
    jittered = colour(images, seeded())
    assert jittered.shape == images.shape and not torch.equal(jittered, images)
    shifts = (jittered - images).mean((1, 2, 3))
    assert shifts.std() > 0.05  # each image draws its own


def test_the_step_augments_the_real_and_both_generated_inputs(generator_params, tiny_images, monkeypatch):
    params = generator_params.model_copy(
        update=dict(gan=generator_params.gan.model_copy(update=dict(diff_augment=POLICY)))
    )
    trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"))
    seen = []
    augment = trainer.augment
    monkeypatch.setattr(trainer, "augment", lambda images, rng: seen.append(images) or augment(images, rng))
    real = torch.from_numpy(tiny_images.images[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    trainer.train_step(real, torch.from_numpy(tiny_images.labels[:4]), seeded(), 0)
    assert len(seen) == 3
    assert torch.equal(seen[0], real)  # D's real input
    assert not seen[1].requires_grad and seen[2].requires_grad  # D's step on G's images, then G's own step
    torch.testing.assert_close(seen[1], seen[2].detach())


def test_conditioning_rises_from_zero_to_one_over_its_steps():
    assert [conditioning_weight(step, 10, 20) for step in (0, 9, 10, 20, 30, 40)] == [0, 0, 0, 0.5, 1, 1]
    assert conditioning_weight(0, 0, 0) == 1.0 and conditioning_weight(4, 5, 0) == 0.0


def test_without_conditioning_neither_network_reads_the_label(generator_params):
    trainer = build_trainer("gan", generator_params, 8, 3, torch.device("cpu"))
    generator, discriminator = trainer.generator.eval(), trainer.discriminator.eval()
    z = torch.randn((4, generator_params.gan.latent_dim), generator=seeded())
    first, other = torch.tensor([0, 0, 1, 2]), torch.tensor([2, 1, 0, 0])
    with torch.no_grad():
        torch.testing.assert_close(generator(z, first, 0.0), generator(z, other, 0.0))
        assert not torch.allclose(generator(z, first, 1.0), generator(z, other, 1.0))
        images = images_batch(count=4)
        torch.testing.assert_close(discriminator(images, first, 0.0), discriminator(images, other, 0.0))
        assert not torch.allclose(discriminator(images, first, 1.0), discriminator(images, other, 1.0))


def test_the_transition_must_end_within_the_training(generator_params):
    raw = generator_params.model_dump()
    raw["gan"] = dict(raw["gan"], conditioning_start=4, conditioning_steps=3)  # steps: 6
    with pytest.raises(ParamsError, match=r"train_generator.gan: conditioning_start \+ conditioning_steps"):
        parse_section("train_generator", raw, TrainGeneratorParams)


def test_lecam_penalty_by_hand():
    real, fake = torch.tensor([1.0, -0.5]), torch.tensor([-1.0, 0.8])
    # relu(real - fake_anchor)^2 with fake anchor -0.2: 1.2^2, 0; relu(real_anchor - fake)^2 with real anchor 0.4:
    # 1.4^2, 0
    assert lecam_penalty(real, fake, 0.4, -0.2).item() == pytest.approx((1.44 + 0) / 2 + (1.96 + 0) / 2)


def test_mode_seeking_penalty_by_hand_and_for_a_generator_that_ignores_its_latent():
    images, paired = torch.zeros((2, 3, 2, 2)), torch.full((2, 3, 2, 2), 0.5)
    latents, paired_latents = torch.zeros((2, 4)), torch.full((2, 4), 2.0)
    # image distance 0.5 per unit of latent distance 2.0: 1 / (0.25 + epsilon)
    assert mode_seeking_penalty(images, paired, latents, paired_latents).item() == pytest.approx(4.0, rel=1e-4)
    ignored = mode_seeking_penalty(images, images.clone(), latents, paired_latents).item()
    assert ignored == pytest.approx(1 / MODE_SEEKING_EPSILON)


def trained_weights(generator_params, tiny_images, steps: int = 3, **options) -> dict[str, torch.Tensor]:
    params = generator_params.model_copy(update=dict(gan=generator_params.gan.model_copy(update=options)))
    torch.manual_seed(0)
    trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"))
    rng = seeded()
    real = torch.from_numpy(tiny_images.images[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    for step in range(steps):
        trainer.train_step(real, torch.from_numpy(tiny_images.labels[:4]), rng, step)
    return {k: v.clone() for k, v in trainer.generator.state_dict().items()} | {
        f"anchor.{k}": torch.tensor(v) for k, v in trainer.lecam_anchors.items()
    }


@pytest.mark.parametrize(
    "option",
    [
        {"diff_augment": ["translation"]},
        {"conditioning_start": 1, "conditioning_steps": 2},
        {"lecam_weight": 0.5},
        {"mode_seeking_weight": 1.0},
    ],
    ids=["diff_augment", "transition", "lecam", "mode_seeking"],
)
def test_each_option_changes_training_and_off_is_todays_training(generator_params, tiny_images, option):
    off = trained_weights(generator_params, tiny_images)
    again = trained_weights(generator_params, tiny_images)
    assert all(torch.equal(off[k], again[k]) for k in off)  # the comparison is deterministic
    on = trained_weights(generator_params, tiny_images, **option)
    assert any(not torch.equal(off[k], on[k]) for k in off if not k.startswith("anchor")), option
    # off: no augmentation, the label at full weight from the first step, no penalty (anchors never move)
    assert generator_params.gan.diff_augment == [] and generator_params.gan.lecam_weight == 0.0
    assert generator_params.gan.mode_seeking_weight == 0.0
    assert conditioning_weight(0, generator_params.gan.conditioning_start, generator_params.gan.conditioning_steps) == 1
    assert float(off["anchor.real"]) == 0.0 and float(off["anchor.fake"]) == 0.0


def test_lecam_anchors_are_moving_averages_and_resume_with_the_state(generator_params, tiny_images):
    anchored = trained_weights(generator_params, tiny_images, steps=2, lecam_weight=0.5)
    assert np.isfinite(float(anchored["anchor.real"])) and float(anchored["anchor.real"]) != 0.0
    params = generator_params.model_copy(
        update=dict(gan=generator_params.gan.model_copy(update=dict(lecam_weight=0.5)))
    )
    trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"))
    trainer.lecam_anchors = {"real": 0.3, "fake": -0.1}
    restored = build_trainer("gan", params, 8, 3, torch.device("cpu"))
    restored.load_state(trainer.state())
    assert restored.lecam_anchors == {"real": 0.3, "fake": -0.1}
