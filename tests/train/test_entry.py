"""What each train entry trains on (synthaug.train.entry.training_set)."""

from __future__ import annotations

import numpy as np
import torch

from synthaug.core.param_rules import load_section
from synthaug.core.params import TrainParams
from synthaug.data.storage import ImageSet
from synthaug.synthetic.shards import METADATA_FILE
from synthaug.train.entry import AddedImages, training_set

from ..conftest import ROOT

CLASSES = ("a", "b", "c")


def real_images() -> tuple[ImageSet, dict[str, np.ndarray]]:
    labels = np.repeat(np.arange(3), 40)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(4, 1).repeat(4, 2).repeat(3, 3)
    val = np.arange(0, 120, 4)
    full = np.setdiff1d(np.arange(120), val)
    train = np.concatenate([full[labels[full] == c][: 5 * (c + 1)] for c in range(3)])
    return ImageSet(images, labels, CLASSES), {"train": np.sort(train), "full": full, "val": val}


def synthetic_run(root, run: str, per_class: list[int], size: int = 4) -> None:
    folder = root / run
    folder.mkdir(parents=True)
    labels = np.repeat(np.arange(3), per_class).astype(np.int64)
    np.savez(folder / "shard-00000.npz", images=np.full((len(labels), size, size, 3), 255, np.uint8), labels=labels)
    (folder / METADATA_FILE).write_text("shard\n", encoding="utf-8")


def test_real_equal_trains_on_as_many_real_images_per_class_as_its_seeds_synthetic_only_set(tmp_path):
    dataset, splits = real_images()
    synthetic_run(tmp_path, "seed0", [7, 7, 7])
    synthetic_run(tmp_path, "seed1", [6, 6, 6])
    params = load_section("train", TrainParams, ROOT / "params.yaml")
    for seed, per_class in ((0, 7), (1, 6)):
        added = AddedImages(tmp_path, alone=True, count_only=True)
        sets = training_set(dataset, splits, "real_equal_gan", seed, added, params)
        train_set, val_set, report = sets.train, sets.val, sets.report
        assert np.bincount(train_set.labels, minlength=3).tolist() == [per_class] * 3
        assert (train_set.images < 255).all()  # real images only, none of the generated ones
        assert report == {"matched_synthetic_images": 3 * per_class, "generator_run": f"seed{seed}"}
        assert len(val_set) == len(splits["val"])
    # the CAS entry of the same seed trains on the generated images, as many
    cas_set = training_set(dataset, splits, "synthetic_only_gan", 0, AddedImages(tmp_path, alone=True), params).train
    assert np.bincount(cas_set.labels, minlength=3).tolist() == [7] * 3 and (cas_set.images == 255).all()


def test_a_composed_variants_loss_fix_takes_the_real_images_prior_not_the_topped_up_one(tmp_path):
    from synthaug.core.variants import composed_variant
    from synthaug.train.entry import prepare_entry
    from synthaug.train.losses import log_prior_offset

    dataset, splits = real_images()
    real_counts = np.bincount(dataset.labels[splits["train"]], minlength=3)
    synthetic_run(tmp_path, "shared", (real_counts.max() - real_counts).tolist())  # tops every class up to 15
    params = load_section("train", TrainParams, ROOT / "params.yaml")
    params = params.model_copy(
        update={"synthetic_filter": params.synthetic_filter.model_copy(update={"enabled": False})}
    )
    sets = training_set(
        dataset, splits, composed_variant("gan", "logit_adjusted"), 0, AddedImages(tmp_path, False), params
    )
    assert np.bincount(sets.train.labels, minlength=3).tolist() == [15, 15, 15]  # balanced with the generated images
    assert np.bincount(sets.real_labels, minlength=3).tolist() == real_counts.tolist() == [5, 10, 15]
    setup = prepare_entry("cnn", composed_variant("gan", "logit_adjusted"), params, sets)
    expected = log_prior_offset(sets.real_labels, 3, params.loss_baselines.logit_adjustment_tau)
    assert torch.equal(setup.loss_spec.logit_offset, expected)
    assert not torch.allclose(expected, expected.mean())  # the real prior is not uniform: the fix does something


def test_generated_images_stored_larger_than_the_real_ones_train_beside_them(tmp_path, tiny_train_params):
    from synthaug.data.mixed import MixedSizeImageSet
    from synthaug.train.classifier import prepare_training, train_classifier

    dataset, splits = real_images()  # 4 px
    synthetic_run(tmp_path, "shared", [10, 5, 0], size=8)  # as synthesize.sdxl_turbo.image_size stores them
    params = tiny_train_params.model_copy(
        update={
            "synthetic_filter": tiny_train_params.synthetic_filter.model_copy(update={"enabled": False}),
            "augment_p": 0.5,
            "epochs": 1,
        }
    )
    sets = training_set(dataset, splits, "synthetic_gan", 0, AddedImages(tmp_path, False), params)
    assert isinstance(sets.train, MixedSizeImageSet) and sets.train.image_size == 8
    assert np.bincount(sets.train.labels, minlength=3).tolist() == [15, 15, 15]
    generated = np.flatnonzero(np.arange(len(sets.train)) >= len(splits["train"]))
    assert (sets.train.batch(generated) == 255).all() and sets.train.batch(generated).shape[1:] == (8, 8, 3)
    torch.manual_seed(0)
    setup = prepare_training("cnn", "synthetic_gan", params, sets.train)
    result = train_classifier(setup, sets.train, sets.val, params, seed=0)
    assert len(result.history) == 1 and np.isfinite(result.history[0].train_loss)
    assert result.history[0].train_accuracy > 0
