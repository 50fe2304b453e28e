"""Classifier checkpoints: safetensors weights plus the JSON spec that rebuilds the model."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from synthaug.errors import MissingInput
from synthaug.io import atomic_path
from synthaug.models.classifiers import ClassifierSpec, build_classifier

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "spec.json"


def save_classifier(directory: str | Path, spec: ClassifierSpec, state_dict: dict[str, torch.Tensor]) -> None:
    with atomic_path(directory, directory=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(tmp / WEIGHTS_FILE))
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_classifier(directory: str | Path) -> tuple[nn.Module, ClassifierSpec]:
    directory = Path(directory)
    for name in (WEIGHTS_FILE, SPEC_FILE):
        if not (directory / name).is_file():
            raise MissingInput(f"{directory / name}: checkpoint file missing (run train_classifier first)")
    spec = ClassifierSpec.from_dict(json.loads((directory / SPEC_FILE).read_text(encoding="utf-8")))
    model = build_classifier(spec)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model.eval(), spec
