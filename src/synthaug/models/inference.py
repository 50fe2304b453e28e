"""Running a classifier on stored images: device placement and batched logits, for training, testing and FID."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from synthaug.core.devices import to_device
from synthaug.data.pixels import InputFormat, to_model_input


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are; the CPU for a model without any."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


@torch.no_grad()
def predict_logits(
    model: nn.Module, images: np.ndarray, input_format: InputFormat, batch_size: int, desc: str = "predict"
) -> np.ndarray:
    """Logits for uint8 images, batch by batch on the model's device (the set is never converted to float whole)."""
    model.eval()
    device = model_device(model)
    outputs = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False, disable=None):
        batch = to_device(to_model_input(images[start : start + batch_size], input_format), device)
        outputs.append(model(batch).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)
