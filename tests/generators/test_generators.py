"""The pipeline's own generators: DDPM and GAN train, checkpoint, resume exactly, sample reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.errors import ParamsError
from synthaug.core.generator_params import SynthesizeParams, TrainGeneratorParams
from synthaug.core.io import write_json
from synthaug.core.param_rules import parse_section
from synthaug.core.resume import load_state, save_state
from synthaug.generators.backends import GENERATOR_FILE, make_backend
from synthaug.generators.gan import discriminator_loss, generator_loss
from synthaug.generators.training import (
    CHECKPOINT_FILE,
    BatchSampler,
    LoopSettings,
    build_trainer,
    class_grid,
    preview_sampler,
    train_generator_loop,
)
from synthaug.synthetic.plan import generation_counts, plan_items

from .conftest import CLASSES


def settings(params: TrainGeneratorParams, generator: str) -> LoopSettings:
    section = getattr(params, generator)
    return LoopSettings(
        steps=section.steps,
        batch_size=section.batch_size,
        seed=params.seed,
        balanced_sampling=True,
        horizontal_flip=True,
        log_every=params.log_every,
        checkpoint_every=params.checkpoint_every,
        sample_every=params.sample_every,
    )


def weights(trainer) -> dict[str, torch.Tensor]:
    return {
        f"{part}.{k}": v
        for part, tree in trainer.state().items()
        if part in ("model", "ema", "generator", "discriminator")
        for k, v in tree.items()
    }


def test_state_round_trips_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), betas=(0.5, 0.9))
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    tree = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": torch.Generator().manual_seed(3).get_state(),
        "history": [{"step": 1, "loss": 0.5}],
        "pair": (1, None),
    }
    save_state(tmp_path / "state.safetensors", tree)
    loaded = load_state(tmp_path / "state.safetensors")
    assert loaded["history"] == [{"step": 1, "loss": 0.5}] and loaded["pair"] == (1, None)
    assert torch.equal(loaded["rng"], tree["rng"]) and torch.equal(loaded["model"]["weight"], model.weight)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(loaded["optimizer"])  # int parameter keys and tuples came back as the optimizer needs
    assert fresh.state_dict()["param_groups"][0]["betas"] == (0.5, 0.9)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_balanced_sampling_draws_classes_evenly():
    labels = np.array([0] * 2 + [1] * 98)
    rng = torch.Generator().manual_seed(0)
    balanced = labels[BatchSampler(labels, 2, balanced=True)(4000, rng).numpy()]
    plain = labels[BatchSampler(labels, 2, balanced=False)(4000, rng).numpy()]
    assert abs((balanced == 0).mean() - 0.5) < 0.03
    assert (plain == 0).mean() < 0.05


@pytest.mark.parametrize("generator", ["ddpm", "gan"])
def test_trains_with_finite_losses_and_logged_curve(generator, generator_params, tiny_images, tmp_path):
    trainer = build_trainer(generator, generator_params, 8, 3, torch.device("cpu"))
    before = {k: v.clone() for k, v in weights(trainer).items()}
    grids = []
    result = train_generator_loop(
        trainer,
        tiny_images,
        settings(generator_params, generator),
        tmp_path / "work",
        "x",
        on_samples=lambda step: grids.append(step),
    )
    assert [row["step"] for row in result.history] == [2, 4, 6] and grids == [3, 6]
    assert all(np.isfinite(v) for row in result.history for v in row.values())
    assert any(not torch.equal(before[k], v) for k, v in weights(trainer).items())
    assert load_state(tmp_path / "work" / CHECKPOINT_FILE)["step"] == 3  # the last one before the end


@pytest.mark.parametrize("generator", ["ddpm", "gan"])
def test_interrupted_training_resumes_to_the_same_weights(generator, generator_params, tiny_images, tmp_path):
    loop = settings(generator_params, generator)
    torch.manual_seed(0)
    straight = build_trainer(generator, generator_params, 8, 3, torch.device("cpu"))
    expected = train_generator_loop(straight, tiny_images, loop, tmp_path / "straight", "same")

    def stop_at_five(step: int, row: dict) -> None:
        if step == 4:  # after the step-3 checkpoint
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_generator_loop(
            build_trainer(generator, generator_params, 8, 3, torch.device("cpu")),
            tiny_images,
            loop,
            tmp_path / "resumed",
            "same",
            on_log=stop_at_five,
        )
    torch.manual_seed(0)
    resumed = build_trainer(generator, generator_params, 8, 3, torch.device("cpu"))
    result = train_generator_loop(resumed, tiny_images, loop, tmp_path / "resumed", "same")
    assert result.resumed_from == 3 and result.history == expected.history
    for key, value in weights(straight).items():
        assert torch.equal(value, weights(resumed)[key]), key


def test_checkpoint_of_other_inputs_is_not_resumed(generator_params, tiny_images, tmp_path):
    loop = settings(generator_params, "gan")
    train_generator_loop(
        build_trainer("gan", generator_params, 8, 3, torch.device("cpu")), tiny_images, loop, tmp_path, "old"
    )
    result = train_generator_loop(
        build_trainer("gan", generator_params, 8, 3, torch.device("cpu")), tiny_images, loop, tmp_path, "new"
    )
    assert result.resumed_from == 0


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(generator_params, tiny_images, tmp_path):
    trainer = build_trainer("ddpm", generator_params, 8, 3, torch.device("cpu"))
    original = trainer.train_step

    def poisoned(images, labels, rng, step):
        return {"loss": float("nan")} if step == 4 else original(images, labels, rng, step)

    trainer.train_step = poisoned
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss \{'loss': nan\} at step 5; the checkpoint of step 3"
    ):
        train_generator_loop(trainer, tiny_images, settings(generator_params, "ddpm"), tmp_path, "x")
    assert load_state(tmp_path / CHECKPOINT_FILE)["step"] == 3


@pytest.mark.parametrize("generator", ["ddpm", "gan"])
def test_exported_generator_fills_the_minority_classes(
    generator, generator_params, tiny_images, project_params, tmp_path
):
    trainer = build_trainer(generator, generator_params, 8, 3, torch.device("cpu"))
    train_generator_loop(trainer, tiny_images, settings(generator_params, generator), tmp_path / "work", "x")
    folder = tmp_path / generator
    trainer.export(folder)
    write_json(
        folder / GENERATOR_FILE,
        {"generator": generator, "trained": True, "class_names": list(CLASSES), "image_size": 8},
    )
    raw = dict(project_params["synthesize"])
    raw["ddpm"] = dict(raw["ddpm"], steps=2, guidance_scale=2.0, batch_size=3)
    raw["gan"] = dict(raw["gan"], batch_size=3)
    params = parse_section("synthesize", raw, SynthesizeParams)
    counts = generation_counts(tiny_images.class_counts(), None, 1.0)
    items = plan_items(np.arange(len(tiny_images)), tiny_images.labels, CLASSES, counts, ["{name}"], seed=0)
    backend = make_backend(generator, params, folder, tiny_images.images, CLASSES)
    images = backend(items)
    assert images.shape == (len(items), 8, 8, 3) and images.dtype == np.uint8
    labels = np.array([item.class_index for item in items])
    assert (np.bincount(labels, minlength=3) + tiny_images.class_counts()).tolist() == [8, 8, 8]
    # Each image depends only on its own seed: generating a later subset alone gives the same pixels.
    assert np.abs(backend(items[4:7]).astype(int) - images[4:7]).max() <= 1


def test_preview_grid_has_one_row_per_class(generator_params):
    trainer = build_trainer("gan", generator_params, 8, 3, torch.device("cpu"))
    grid = class_grid(preview_sampler(trainer, generator_params, 3), 3, 2, seed=0)
    # 3 rows x 2 columns of 8 px images with 2 px gaps, doubled
    assert grid.shape == (2 * (3 * 10 - 2), 2 * (2 * 10 - 2), 3)


def test_gan_options_build_and_step(generator_params, tiny_images):
    for block in ("transposed", "upsample", "csp"):
        for conditioning in ("projection", "embedding"):
            for spectral in (False, True):
                gan = generator_params.gan.model_copy(
                    update=dict(generator_block=block, discriminator_conditioning=conditioning, spectral_norm=spectral)
                )
                params = generator_params.model_copy(update=dict(gan=gan))
                trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"))
                images = torch.from_numpy(tiny_images.images[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
                losses = trainer.train_step(
                    images, torch.from_numpy(tiny_images.labels[:4]), torch.Generator().manual_seed(0), 0
                )
                assert set(losses) == {"loss_d", "loss_g", "d_real", "d_fake"} and all(
                    np.isfinite(list(losses.values()))
                )
                has_spectral = any("parametrizations" in name for name, _ in trainer.discriminator.named_parameters())
                assert has_spectral == spectral


def test_gan_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.3])
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = mean(0, 0.5) + mean(0, 1.3); G: -mean(fake)
    assert discriminator_loss(real, fake, "hinge", 1.0).item() == pytest.approx(0.25 + 0.65)
    assert generator_loss(fake, "hinge").item() == pytest.approx(0.85)
    # bce with one-sided smoothing 0.9: -[0.9 log s(x) + 0.1 log(1 - s(x))] on real, -log(1 - s(x)) on fake
    sig = torch.sigmoid
    expected_d = -(0.9 * torch.log(sig(real)) + 0.1 * torch.log(1 - sig(real))).mean() - torch.log(1 - sig(fake)).mean()
    assert discriminator_loss(real, fake, "bce", 0.9).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert generator_loss(fake, "bce").item() == pytest.approx(-torch.log(sig(fake)).mean().item(), rel=1e-6)


def gan_step(generator_params, tiny_images, **options):
    params = generator_params.model_copy(update=dict(gan=generator_params.gan.model_copy(update=options)))
    torch.manual_seed(0)
    trainer = build_trainer("gan", params, 8, 3, torch.device("cpu"))
    before = {name: value.detach().clone() for name, value in trainer.discriminator.named_parameters()}
    images = torch.from_numpy(tiny_images.images[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    losses = trainer.train_step(images, torch.from_numpy(tiny_images.labels[:4]), torch.Generator().manual_seed(0), 0)
    return trainer, before, losses


def test_gan_hinge_loss_trains_and_label_smoothing_is_refused_with_it(generator_params, tiny_images):
    # the same networks, batch and noise; only the loss differs
    _, _, bce = gan_step(generator_params, tiny_images, loss="bce", label_smoothing=1.0, spectral_norm=True)
    _, _, hinge = gan_step(generator_params, tiny_images, loss="hinge", label_smoothing=1.0, spectral_norm=True)
    assert all(np.isfinite(list(hinge.values()))) and hinge["loss_d"] != pytest.approx(bce["loss_d"])
    assert hinge["loss_g"] != pytest.approx(bce["loss_g"])
    raw = generator_params.model_dump()
    raw["gan"] = dict(raw["gan"], loss="hinge", label_smoothing=0.9)
    with pytest.raises(ParamsError, match="train_generator.gan: label_smoothing: 0.9 smooths the bce loss"):
        parse_section("train_generator", raw, TrainGeneratorParams)


def test_gan_weight_decay_is_an_l2_pull_on_its_own_network(generator_params, tiny_images):
    """With Adam, a first step moves each weight by lr * sign(gradient); an L2 strength far above the loss's
    gradients makes that sign the weight's own, so every discriminator weight moves lr towards zero."""
    trainer, before, _ = gan_step(generator_params, tiny_images, weight_decay_discriminator=1e6)
    lr = generator_params.gan.lr_discriminator
    assert [group["weight_decay"] for group in trainer.optimizer_d.param_groups] == [1e6]
    assert [group["weight_decay"] for group in trainer.optimizer_g.param_groups] == [0.0]
    for name, value in trainer.discriminator.named_parameters():
        large = before[name].abs() > 1e-2  # the L2 gradient (1e6 * w) dwarfs the loss's there
        moved = (value.detach() - before[name])[large]
        torch.testing.assert_close(moved, -lr * torch.sign(before[name][large]), rtol=1e-3, atol=1e-7)
    plain, plain_before, _ = gan_step(generator_params, tiny_images)
    steps = [
        (value.detach() - plain_before[name]).abs().max().item()
        for name, value in plain.discriminator.named_parameters()
    ]
    assert max(steps) > 0  # without the penalty the same step moves weights by the loss alone


def test_gan_rejects_sizes_that_are_not_powers_of_two(generator_params):
    with pytest.raises(ValueError, match="power of two"):
        build_trainer("gan", generator_params, 12, 3, torch.device("cpu"))
