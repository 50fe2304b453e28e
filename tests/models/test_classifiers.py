from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet
from synthaug.models.checkpoint import load_classifier, save_classifier
from synthaug.models.classifiers import (
    ClassifierSpec,
    build_classifier,
    count_parameters,
)
from synthaug.train.classifier import spec_from_params

SEED_VIT = dict(
    patch_size=16, hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256, dropout=0.0
)


def test_seed_vit_architecture():
    model = build_classifier(ClassifierSpec("vit", 10, 224, SEED_VIT))
    config = model.vit.config
    assert (config.image_size, config.patch_size, config.hidden_size) == (224, 16, 128)
    assert (config.num_hidden_layers, config.num_attention_heads, config.intermediate_size) == (4, 2, 256)
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 10)


@pytest.mark.parametrize("kind", ["vit", "cnn", "timm"])
def test_every_classifier_maps_images_to_logits(kind, tiny_train_params):
    if kind == "timm":
        tiny_train_params = tiny_train_params.model_copy(
            update={"timm": tiny_train_params.timm.model_copy(update={"name": "resnet18"})}
        )
    spec = spec_from_params(kind, tiny_train_params, num_classes=3)
    model = build_classifier(spec)
    assert model(torch.zeros(4, 3, spec.image_size, spec.image_size)).shape == (4, 3)
    assert count_parameters(model) > 0


def test_cnn_blocks_follow_channels():
    model = build_classifier(ClassifierSpec("cnn", 5, 32, dict(channels=[32, 64, 128], dropout=0.0)))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in model.modules())


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown classifier 'mlp'"):
        build_classifier(ClassifierSpec("mlp", 2, 8))
    with pytest.raises(ValueError, match=r"train\.timm\.name: unknown timm model 'not_a_model'"):
        build_classifier(ClassifierSpec("timm", 2, 8, dict(name="not_a_model", pretrained=False)))


def test_checkpoint_roundtrip_is_exact(tmp_path, tiny_train_params):
    spec = spec_from_params("vit", tiny_train_params, num_classes=3)
    model = build_classifier(spec).eval()
    save_classifier(tmp_path / "ckpt", spec, model.state_dict())
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.safetensors", "spec.json"]
    loaded, loaded_spec = load_classifier(tmp_path / "ckpt")
    inputs = torch.randn(2, 3, 8, 8)
    assert loaded_spec == spec
    torch.testing.assert_close(loaded(inputs), model(inputs), rtol=0, atol=0)


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="run train_classifier first"):
        load_classifier(tmp_path)


def timm_params(params, **timm):
    return params.model_copy(update={"timm": params.timm.model_copy(update=timm)})


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [
        ("vit_tiny_patch16_224", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("resnet18", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ],
)
def test_a_timm_model_reads_its_pretrained_config_whatever_the_vit_reads(name, mean, std, tiny_train_params):
    params = timm_params(tiny_train_params, name=name, image_size=None)
    spec = spec_from_params("timm", params, num_classes=3)
    assert (spec.image_size, spec.mean, spec.std) == (224, mean, std)
    assert spec_from_params("vit", params, num_classes=3).input_format == InputFormat(8)  # train.image_size
    assert spec_from_params("timm", timm_params(params, image_size=32), 3).input_format == InputFormat(32, mean, std)


def test_a_fixed_size_timm_vit_refuses_another_size(tiny_train_params):
    spec = spec_from_params("timm", timm_params(tiny_train_params, name="vit_tiny_patch16_224", image_size=32), 3)
    with pytest.raises(ValueError, match=r"train\.timm\.image_size: vit_tiny_patch16_224 reads 224 px images only"):
        build_classifier(spec)


def test_vit_and_a_vit_tiny_probe_train_side_by_side_each_on_its_own_input(tiny_train_params):
    from synthaug.core.seeding import seed_everything
    from synthaug.train.classifier import prepare_training, train_classifier

    params = timm_params(
        tiny_train_params.model_copy(update={"epochs": 1}),
        name="vit_tiny_patch16_224",
        linear_probe=True,
        image_size=None,
    )
    colour = torch.tensor([51, 102, 204], dtype=torch.uint8)
    images = colour.view(1, 1, 1, 3).expand(8, 8, 8, 3).numpy().copy()
    data = ImageSet(images, np.arange(8) % 2, ("a", "b"))
    level = colour.float() / 255
    for kind, size, mean, std in (("vit", 8, 0.5, 0.5), ("timm", 224, 0.5, 0.5)):
        seed_everything(0)
        setup = prepare_training(kind, "baseline", params, data)
        seen = []
        setup.model.register_forward_pre_hook(lambda module, inputs, seen=seen: seen.append(inputs[0]))
        train_classifier(setup, data, data, params, seed=0)
        assert seen and all(batch.shape[1:] == (3, size, size) for batch in seen), kind
        expected = ((level - mean) / std).view(1, 3, 1, 1).expand_as(seen[0])
        torch.testing.assert_close(seen[0], expected, rtol=1e-5, atol=1e-5)


def test_a_resnet_probe_is_fed_imagenet_statistics(tiny_train_params):
    from synthaug.models.inference import predict_logits

    spec = spec_from_params("timm", timm_params(tiny_train_params, name="resnet18", image_size=16), 2)
    model, seen = build_classifier(spec), []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    predict_logits(model, np.full((2, 8, 8, 3), 255, np.uint8), spec.input_format, batch_size=2)
    expected = [(1 - m) / s for m, s in zip(spec.mean, spec.std)]
    assert seen[0].shape == (2, 3, 16, 16)
    torch.testing.assert_close(seen[0][0, :, 0, 0], torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_specs_keep_their_input_format_and_older_specs_read_minus_one_to_one(tmp_path, tiny_train_params):
    import json

    spec = spec_from_params("timm", timm_params(tiny_train_params, name="resnet18", image_size=16), 2)
    save_classifier(tmp_path / "new", spec, build_classifier(spec).state_dict())
    assert load_classifier(tmp_path / "new")[1].input_format == spec.input_format
    old = spec_from_params("cnn", tiny_train_params, 2)
    save_classifier(tmp_path / "old", old, build_classifier(old).state_dict())
    written = json.loads((tmp_path / "old/spec.json").read_text())
    (tmp_path / "old/spec.json").write_text(json.dumps({k: v for k, v in written.items() if k not in ("mean", "std")}))
    assert load_classifier(tmp_path / "old")[1].input_format == InputFormat(8, (0.5,) * 3, (0.5,) * 3)
