"""The features FID is computed on: pytorch-fid's InceptionV3 (64, 192, 768 or 2048-d, as `pytorch_fid --dims`)
when its weights are available, fetched through torch.hub as pytorch-fid does; otherwise the penultimate features
of a classifier the pipeline trained on the full real data. The two are different metrics: results carry the
name `fid` or `fid_classifier_features`, never one standing in for the other.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from synthaug.core.errors import FeatureWeightsMissing
from synthaug.data.pixels import InputFormat
from synthaug.metrics.fid import FID_DIMS

log = logging.getLogger("synthaug.fid")

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID_WEIGHTS_URL file name


def hub_weights_path() -> Path:
    """Where torch.hub (and so pytorch-fid) caches the FID Inception weights: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torch.hub's download has no timeout of its own: a silent network must fail, not hang the stage."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def inception_weights_path(weights: str | None, url: str | None = None, timeout: float = 60.0) -> Path:
    """The FID Inception weights: the given path; else torch hub's cached file, downloaded from `url` first
    when missing (as pytorch-fid does). FeatureWeightsMissing, naming the param, when none can be had."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FeatureWeightsMissing(f"fid.inception_weights: {path} not found")
        return path
    path = hub_weights_path()
    if path.is_file():
        return path
    if not url:
        raise FeatureWeightsMissing(f"fid.inception_url: not set and {path} is not cached")
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("fetching the FID Inception weights from %s into %s", url, path)
    try:
        with _socket_timeout(timeout):  # writes a temporary file beside `path` and moves it in when complete
            torch.hub.download_url_to_file(url, str(path), progress=sys.stderr.isatty())
    except (OSError, ValueError, RuntimeError) as exc:  # URLError and HTTPError are OSErrors
        raise FeatureWeightsMissing(
            f"fid.inception_url: cannot fetch {url} ({type(exc).__name__}: {exc}); put {INCEPTION_FILE} at {path} "
            "or set fid.inception_weights to its path"
        ) from None
    return path


@contextmanager
def _weights_from(state_dict: dict) -> Iterator[None]:
    """pytorch-fid fetches its weights by URL inside the constructor; hand it the loaded ones instead."""
    from pytorch_fid import inception

    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        inception.load_state_dict_from_url = original


def load_fid_inception(weights: str | Path, dims: int = 2048) -> nn.Module:
    """pytorch-fid's InceptionV3 (FID variant) returning the block `dims` picks, weights read without unpickling."""
    from pytorch_fid.inception import InceptionV3

    if dims not in FID_DIMS:
        raise ValueError(f"fid.dims: {dims} is not one of pytorch-fid's {FID_DIMS}")
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    with _weights_from(state_dict):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    return model.eval()


@torch.inference_mode()
def inception_features(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Features of uint8 (N, H, W, 3) images, as pytorch-fid's get_activations makes them: the model resizes to
    299 and scales to [-1, 1]; the 64/192/768-d blocks are spatial maps, averaged to one vector per image."""
    model = model.to(device)
    outputs = []
    for start in tqdm(
        range(0, len(images), batch_size), desc="inception features", unit="batch", leave=False, disable=None
    ):
        batch = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).float().div_(255.0)
        block = model(batch.to(device))[0]
        if block.shape[2:] != (1, 1):
            block = torch.nn.functional.adaptive_avg_pool2d(block, (1, 1))
        outputs.append(block.squeeze(3).squeeze(2).float().cpu().numpy())
    return np.concatenate(outputs)


def _head(model: nn.Module, num_classes: int) -> nn.Linear:
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not heads:
        raise ValueError(f"no linear layer with {num_classes} outputs: cannot find the classifier's head")
    return heads[-1]


@torch.inference_mode()
def classifier_features(
    model: nn.Module, images: np.ndarray, input_format: InputFormat, num_classes: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (the input of the classification head) and logits, batch by batch."""
    from synthaug.models.inference import predict_logits

    captured: list[torch.Tensor] = []
    hook = _head(model, num_classes).register_forward_pre_hook(
        lambda module, inputs: captured.append(inputs[0].detach().float().flatten(1).cpu())
    )
    try:
        logits = predict_logits(model, images, input_format, batch_size, "classifier features")
    finally:
        hook.remove()
    return torch.cat(captured).numpy(), logits
