"""Training state (weights, optimizers, RNG states, counters) in one safetensors file, no pickle.

A nested dict/list of tensors and JSON scalars is split into flat tensors (the safetensors body) and a
JSON skeleton (its metadata) that names where each tensor goes back, so loading never runs code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from synthaug.core.io import atomic_path

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"


def _split(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, torch.Tensor):
        key = prefix or "_"
        tensors[key] = tree.detach().cpu().clone().contiguous()  # own storage: safetensors rejects shared tensors
        return {_TENSOR: key}
    if isinstance(tree, dict):
        return {str(k): _split(v, f"{prefix}.{k}" if prefix else str(k), tensors) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return {_TUPLE: [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot store {type(tree).__name__} at '{prefix}' in a training state")


def _join(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if set(skeleton) == {_TENSOR}:
            return tensors[skeleton[_TENSOR]]
        if set(skeleton) == {_TUPLE}:
            return tuple(_join(v, tensors) for v in skeleton[_TUPLE])
        # Optimizer state is keyed by parameter index; JSON made those keys strings.
        return {(int(k) if k.isdigit() else k): _join(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_join(v, tensors) for v in skeleton]
    return skeleton


def save_state(path: str | Path, tree: dict[str, Any]) -> None:
    """Write `tree` atomically: a killed save never replaces the last good state."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(tree, "", tensors)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"tree": json.dumps(skeleton)})


def load_state(path: str | Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as handle:
        skeleton = json.loads(handle.metadata()["tree"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return _join(skeleton, tensors)
