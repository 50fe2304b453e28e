"""Classifier checkpoints: safetensors weights plus the JSON spec that rebuilds the model."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from synthaug.core.errors import MissingInput
from synthaug.core.io import atomic_path, read_json, write_json
from synthaug.models.classifiers import ClassifierSpec, build_classifier

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "spec.json"


def save_classifier(directory: str | Path, spec: ClassifierSpec, state_dict: dict[str, torch.Tensor]) -> None:
    with atomic_path(directory, directory=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(tmp / WEIGHTS_FILE))
        write_json(tmp / SPEC_FILE, spec.to_dict())


def load_classifier(directory: str | Path) -> tuple[nn.Module, ClassifierSpec]:
    directory = Path(directory)
    for name in (WEIGHTS_FILE, SPEC_FILE):
        if not (directory / name).is_file():
            raise MissingInput(f"{directory / name}: checkpoint file missing (run train_classifier first)")
    spec = ClassifierSpec.from_dict(read_json(directory / SPEC_FILE))
    model = build_classifier(spec)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model.eval(), spec
