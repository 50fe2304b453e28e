from __future__ import annotations

import pytest
import torch

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
