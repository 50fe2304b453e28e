from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.core.resume import load_state
from synthaug.core.seeding import seed_everything
from synthaug.data.storage import ImageSet
from synthaug.train.classifier import (
    history_csv,
    make_scheduler,
    predict_logits,
    prepare_training,
    train_classifier,
)
from synthaug.train.losses import balanced_class_weights


def three_batches(params, num_classes: int = 4, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    n = 3 * params.batch_size
    images = rng.integers(0, 256, (n, params.image_size, params.image_size, 3), dtype=np.uint8)
    return ImageSet(images, rng.integers(0, num_classes, n), tuple("abcd")[:num_classes])


@pytest.mark.parametrize("kind", ["vit", "cnn"])
def test_overfits_three_batches(kind, tiny_train_params):
    # The reference study's sanity check: random images with random labels, memorized to accuracy 1.0.
    params = tiny_train_params.model_copy(update={"epochs": 60, "schedule": "constant"})
    data = three_batches(params)
    seed_everything(0)
    setup = prepare_training(kind, "baseline", params, data)
    result = train_classifier(setup, data, data, params, seed=0)
    predicted = predict_logits(setup.model, data.images, setup.spec.input_format, 64).argmax(1)
    assert result.history[-1].train_accuracy == 1.0
    assert (predicted == data.labels).mean() == 1.0
    assert result.best_val_macro_f1 == 1.0


def test_same_seed_same_history_and_weights(tiny_train_params):
    data = three_batches(tiny_train_params)
    runs = []
    for _ in range(2):
        seed_everything(5)
        setup = prepare_training("vit", "baseline", tiny_train_params, data)
        runs.append(
            train_classifier(setup, data, data, tiny_train_params.model_copy(update={"augment_p": 0.5}), seed=5)
        )
    assert [r.to_dict() for r in runs[0].history] == [r.to_dict() for r in runs[1].history]
    for name, tensor in runs[0].best_state.items():
        torch.testing.assert_close(tensor, runs[1].best_state[name], rtol=0, atol=0)


def test_best_epoch_weights_are_kept(tiny_train_params):
    data = three_batches(tiny_train_params)
    seed_everything(0)
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    seen = []
    result = train_classifier(
        setup, data, data, tiny_train_params.model_copy(update={"epochs": 4}), seed=0, on_epoch=seen.append
    )
    assert len(seen) == 4 and [r.epoch for r in seen] == [1, 2, 3, 4]
    best = max(seen, key=lambda r: r.val_macro_f1)
    assert result.best_epoch == best.epoch or seen[result.best_epoch - 1].val_macro_f1 == best.val_macro_f1
    setup.model.load_state_dict(result.best_state)
    predicted = predict_logits(setup.model, data.images, setup.spec.input_format, 64).argmax(1)
    from synthaug.metrics.classification import macro_f1

    assert macro_f1(data.labels, predicted, data.num_classes) == pytest.approx(result.best_val_macro_f1, abs=1e-6)


def test_linear_schedule_reaches_end_factor(tiny_train_params):
    params = tiny_train_params.model_copy(update={"lr": 1.0, "lr_end_factor": 0.1})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params.lr)
    scheduler = make_scheduler(optimizer, params, total_steps=10)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_torch_linearlr_gives_per_epoch_linearlr_lrs(tiny_train_params):
    # The reference: torch's LinearLR with its defaults, stepped once after each epoch.
    epochs, steps_per_epoch = 8, 3
    params = tiny_train_params.model_copy(update={"lr": 1.0, "epochs": epochs, "schedule": "torch_linearlr"})
    ours_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params.lr)
    ours = make_scheduler(ours_optimizer, params, total_steps=epochs * steps_per_epoch)
    torch_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params.lr)
    reference = torch.optim.lr_scheduler.LinearLR(torch_optimizer)
    for _ in range(epochs):
        expected = torch_optimizer.param_groups[0]["lr"]
        for _ in range(steps_per_epoch):
            assert ours_optimizer.param_groups[0]["lr"] == pytest.approx(expected)
            ours_optimizer.step()
            ours.step()
        torch_optimizer.step()
        reference.step()
    assert ours_optimizer.param_groups[0]["lr"] == pytest.approx(1.0)  # warmed up, no decay


def test_select_last_keeps_the_last_epoch_not_the_best(tiny_train_params):
    data = three_batches(tiny_train_params)
    # The ViT (no batch statistics) at lr 1e-12: every epoch scores the same, so best_val keeps epoch 1 (the first
    # best) and last keeps epoch 3
    tied = tiny_train_params.model_copy(update={"epochs": 3, "lr": 1e-12, "schedule": "constant"})
    kept = {}
    for select in ("best_val", "last"):
        seed_everything(0)
        setup = prepare_training("vit", "baseline", tied, data)
        kept[select] = train_classifier(setup, data, data, tied.model_copy(update={"select": select}), seed=0)
    assert {select: result.best_epoch for select, result in kept.items()} == {"best_val": 1, "last": 3}
    assert kept["last"].best_val_macro_f1 == kept["last"].history[-1].val_macro_f1
    # and the kept weights are the model's at the end of the run
    seed_everything(0)
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    result = train_classifier(setup, data, data, tiny_train_params.model_copy(update={"select": "last"}), seed=0)
    final = setup.model.state_dict()
    assert all(torch.equal(result.best_state[name], final[name]) for name in final)


def test_non_finite_loss_stops_with_step(tiny_train_params):
    data = three_batches(tiny_train_params)
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    with torch.no_grad():
        next(setup.model.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"non-finite training loss nan at epoch 1, step 1"):
        train_classifier(setup, data, data, tiny_train_params, seed=0)


def test_history_csv_has_header_and_rows(tiny_train_params):
    data = three_batches(tiny_train_params)
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    result = train_classifier(setup, data, data, tiny_train_params, seed=0)
    lines = history_csv(result.history).splitlines()
    assert lines[0] == "epoch,lr,train_loss,train_accuracy,val_accuracy,val_macro_f1"
    assert len(lines) == 1 + tiny_train_params.epochs and lines[1].startswith("1,")


@pytest.mark.parametrize(("kind", "engine"), [("cnn", "torch"), ("vit", "torch"), ("cnn", "albumentations")])
def test_interrupted_training_resumes_to_the_same_result(kind, engine, tiny_train_params, tmp_path):
    params = tiny_train_params.model_copy(update={"epochs": 3, "augment_p": 0.5, "augment_engine": engine})
    params = params.model_copy(update={"cnn": params.cnn.model_copy(update={"dropout": 0.3})})
    data = three_batches(params)

    def fresh_model():
        seed_everything(1)
        return prepare_training(kind, "baseline", params, data)

    reference = train_classifier(fresh_model(), data, data, params, seed=1)

    def stop_after_first(record):
        if record.epoch == 2:
            raise KeyboardInterrupt  # killed during epoch 2's bookkeeping: epoch 1 is the last checkpoint

    checkpoint = tmp_path / "last.safetensors"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(
            fresh_model(), data, data, params, seed=1, on_epoch=stop_after_first, checkpoint=checkpoint, fingerprint="f"
        )
    assert load_state(checkpoint)["epoch"] == 1  # safetensors with a JSON skeleton, as the generators' state
    seen = []
    torch.manual_seed(999)  # a resumed process starts with other global RNG state: the checkpoint must restore it
    resumed = train_classifier(
        fresh_model(), data, data, params, seed=1, on_epoch=seen.append, checkpoint=checkpoint, fingerprint="f"
    )
    assert [r.epoch for r in seen] == [2, 3]  # only the missing epochs ran
    assert [r.to_dict() for r in resumed.history] == [r.to_dict() for r in reference.history]
    for name, tensor in reference.best_state.items():
        torch.testing.assert_close(resumed.best_state[name], tensor, rtol=0, atol=0)


def test_checkpoint_from_other_inputs_is_ignored(tiny_train_params, tmp_path):
    data = three_batches(tiny_train_params)
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    train_classifier(
        setup, data, data, tiny_train_params, seed=0, checkpoint=tmp_path / "last.safetensors", fingerprint="old"
    )
    seen = []
    setup = prepare_training("cnn", "baseline", tiny_train_params, data)
    train_classifier(
        setup,
        data,
        data,
        tiny_train_params,
        seed=0,
        on_epoch=seen.append,
        checkpoint=tmp_path / "last.safetensors",
        fingerprint="new",
    )
    assert [r.epoch for r in seen] == [1, 2]


def frozen_params(params, **update):
    """A learning rate too small to move any prediction (the ViT has no batch statistics to drift): validation
    macro-F1 never rises after epoch 1."""
    return params.model_copy(update={"lr": 1e-12, "schedule": "constant", **update})


def test_early_stopping_ends_the_run_when_validation_stops_rising(tiny_train_params):
    params = frozen_params(tiny_train_params, epochs=10, early_stopping_patience=2)
    data = three_batches(params)
    seed_everything(0)
    result = train_classifier(prepare_training("vit", "baseline", params, data), data, data, params, seed=0)
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.best_epoch == 1 and result.stopped_early


def test_no_patience_trains_every_epoch(tiny_train_params):
    params = frozen_params(tiny_train_params, epochs=4, early_stopping_patience=0)
    data = three_batches(params)
    result = train_classifier(prepare_training("vit", "baseline", params, data), data, data, params, seed=0)
    assert len(result.history) == 4 and not result.stopped_early


def test_a_run_resumed_after_its_stopping_epoch_trains_no_further(tiny_train_params, tmp_path):
    data = three_batches(tiny_train_params)
    checkpoint = tmp_path / "last.safetensors"

    def stop_at_fourth(record):
        if record.epoch == 4:
            raise KeyboardInterrupt  # the checkpoint holds epochs 1-3, whose best is epoch 1

    first = frozen_params(tiny_train_params, epochs=6, early_stopping_patience=0)
    with pytest.raises(KeyboardInterrupt):
        setup = prepare_training("vit", "baseline", first, data)
        train_classifier(
            setup, data, data, first, seed=0, on_epoch=stop_at_fourth, checkpoint=checkpoint, fingerprint="f"
        )
    patient = frozen_params(tiny_train_params, epochs=6, early_stopping_patience=2)
    setup = prepare_training("vit", "baseline", patient, data)
    result = train_classifier(setup, data, data, patient, seed=0, checkpoint=checkpoint, fingerprint="f")
    assert [r.epoch for r in result.history] == [1, 2, 3] and result.stopped_early


def test_careful_variants_weight_generated_images_or_end_on_the_real_ones(tiny_train_params):
    from synthaug.train.classifier import _epoch_plan

    params = tiny_train_params.model_copy(update={"epochs": 3})
    data = three_batches(params)  # 24 images: say the first 10 are real, the rest generated
    labels = data.labels[:10]
    careful = params.careful.model_copy(update={"synthetic_weight": 0.25, "real_epochs": 2})
    params = params.model_copy(update={"careful": careful})
    weighted = prepare_training("vit", "weighted_gan", params, data, labels)
    order, loss, weights = _epoch_plan(np.random.default_rng(0), weighted, len(data), 3, params.epochs)
    assert sorted(order) == list(range(24)) and loss == weighted.loss_spec
    assert weights is not None and weights.tolist() == [1.0] * 10 + [0.25] * 14
    finetuned = prepare_training("vit", "finetuned_gan", params, data, labels)
    order, loss, weights = _epoch_plan(np.random.default_rng(0), finetuned, len(data), 1, params.epochs)
    assert sorted(order) == list(range(24)) and weights is None  # before its real phase: every image
    for epoch in (2, 3):  # the last 2 epochs: the real images only, as many steps as a full epoch
        order, loss, weights = _epoch_plan(np.random.default_rng(0), finetuned, len(data), epoch, params.epochs)
        assert len(order) == 24 and set(order) == set(range(10)) and weights is None
        torch.testing.assert_close(loss.class_weights, balanced_class_weights(labels, 4))
    assert prepare_training("vit", "synthetic_gan", params, data, labels).careful is None


def test_a_finetuned_entry_trains_every_epoch_whatever_the_patience(tiny_train_params):
    params = frozen_params(tiny_train_params, epochs=5, early_stopping_patience=1)
    data = three_batches(params)
    seed_everything(0)
    setup = prepare_training("vit", "finetuned_gan", params, data, data.labels[:10])
    assert len(train_classifier(setup, data, data, params, seed=0).history) == 5
