"""Classifiers behind one constructor: every model maps (N, 3, S, S) floats to (N, C) logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from synthaug.data.pixels import FROM_SCRATCH_MEAN, FROM_SCRATCH_STD, InputFormat


@dataclass(frozen=True)
class ClassifierSpec:
    """Everything needed to rebuild a classifier and feed it; saved beside its weights."""

    kind: str  # "vit" | "cnn" | "timm"
    num_classes: int
    image_size: int
    options: dict[str, Any] = field(default_factory=dict)
    mean: tuple[float, float, float] = FROM_SCRATCH_MEAN  # per channel, of pixels scaled to [0, 1]
    std: tuple[float, float, float] = FROM_SCRATCH_STD

    @property
    def input_format(self) -> InputFormat:
        return InputFormat(self.image_size, self.mean, self.std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierSpec:
        """A spec.json; one written before mean and std were stored read [-1, 1], the defaults."""
        data = dict(data)
        for key in ("mean", "std"):
            if key in data:
                data[key] = tuple(float(value) for value in data[key])
        return cls(**data)


class HFViTClassifier(nn.Module):
    """transformers' ViTForImageClassification, returning plain logits."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        from transformers import ViTConfig, ViTForImageClassification

        opts = spec.options
        config = ViTConfig(
            image_size=spec.image_size,
            patch_size=opts["patch_size"],
            num_channels=3,
            hidden_size=opts["hidden_size"],
            num_hidden_layers=opts["num_hidden_layers"],
            num_attention_heads=opts["num_attention_heads"],
            intermediate_size=opts["intermediate_size"],
            hidden_dropout_prob=opts["dropout"],
            attention_probs_dropout_prob=opts["dropout"],
            num_labels=spec.num_classes,  # type: ignore[call-arg]  # PretrainedConfig's **kwargs, undeclared here
        )
        self.vit = ViTForImageClassification(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vit(pixel_values=pixels).logits


class SmallCNN(nn.Module):
    """The reference study's CNN: conv blocks (32/64/128 by default), LeakyReLU, max-pool, then a linear head."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in spec.options["channels"]:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(0.1),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(spec.options["dropout"]),
            nn.Linear(in_channels, spec.num_classes),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # oneDNN's channels-last convolutions: 1.5x the training step of contiguous ones on 2 CPU cores
        return self.head(self.features(pixels.contiguous(memory_format=torch.channels_last)))


class TimmClassifier(nn.Module):
    """Any timm model by name; `pretrained` needs the weights reachable (hub or local cache).

    With `linear_probe`, only the classification head trains: the backbone's weights are frozen and it stays
    in eval mode (BatchNorm statistics and dropout as pretrained), whatever mode the model is put in.
    """

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        import timm

        from synthaug.core.errors import ModelLoadError

        name = spec.options["name"]
        check_timm_name(name)
        try:
            pretrained = spec.options["pretrained"]
            model: Any = timm.create_model(name, pretrained=pretrained, num_classes=spec.num_classes)
        except Exception as exc:
            raise ModelLoadError(
                f"train.timm: cannot load pretrained weights for {name!r} ({type(exc).__name__}); "
                "offline? set train.timm.pretrained=false or pre-populate the Hugging Face cache"
            ) from None
        self.model = model
        fixed_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        if fixed_size is not None and tuple(fixed_size) != (spec.image_size, spec.image_size):
            raise ValueError(
                f"train.timm.image_size: {name} reads {fixed_size[0]} px images only, not {spec.image_size}; "
                "set it to null (the model's own size)"
            )
        self.linear_probe = bool(spec.options.get("linear_probe", False))
        if self.linear_probe:
            head = {id(p) for p in model.get_classifier().parameters()}
            for parameter in model.parameters():
                parameter.requires_grad_(id(parameter) in head)

    def train(self, mode: bool = True) -> TimmClassifier:
        super().train(mode)
        if self.linear_probe:
            self.model.eval()
            self.model.get_classifier().train(mode)
        return self

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


def check_timm_name(name: str) -> None:
    import timm

    if name not in timm.list_models():
        raise ValueError(f"train.timm.name: unknown timm model {name!r}")


def timm_input_format(name: str, image_size: int | None) -> InputFormat:
    """What the timm model `name` was pretrained to read (timm.data.resolve_data_config of its pretrained config):
    its input size unless `image_size` is given, and its per-channel mean and std."""
    import timm.data
    from timm.models import get_pretrained_cfg

    check_timm_name(name)
    pretrained = get_pretrained_cfg(name)
    config = timm.data.resolve_data_config(pretrained_cfg=pretrained.to_dict() if pretrained else None)
    size = image_size if image_size is not None else int(config["input_size"][-1])
    return InputFormat(size, per_channel(config["mean"]), per_channel(config["std"]))


def per_channel(values: Any) -> tuple[float, float, float]:
    red, green, blue = (float(value) for value in values)
    return red, green, blue


BUILDERS: dict[str, type[nn.Module]] = {"vit": HFViTClassifier, "cnn": SmallCNN, "timm": TimmClassifier}


def build_classifier(spec: ClassifierSpec) -> nn.Module:
    if spec.kind not in BUILDERS:
        raise ValueError(f"unknown classifier {spec.kind!r} (allowed: {', '.join(BUILDERS)})")
    return BUILDERS[spec.kind](spec)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What the optimizer updates: everything, except a linear probe's frozen backbone."""
    return [p for p in model.parameters() if p.requires_grad]
