"""Planted stand-ins for weights that cannot be downloaded here: pytorch-fid's FID Inception with random weights.

Saved under the real file name, so pytorch-fid's own loader (and its CLI) takes them from the torch hub cache.
`python -m tests.planted DIR` writes DIR/hub/checkpoints/<file>: point TORCH_HOME at DIR to use them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import torch

from synthaug.metrics.features import INCEPTION_FILE


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor of pytorch-fid's FID InceptionV3: convolutions He-initialized (variance-preserving, so the deep
    features still depend on the image), BatchNorm as the identity, the unused 1008-way head small and random."""
    import torchvision
    from pytorch_fid import inception

    captured: dict[str, torch.Tensor] = {}

    def capture(self, state_dict, *args, **kwargs):
        captured.update(self.state_dict())

    with (
        mock.patch.object(inception, "load_state_dict_from_url", return_value={}),
        mock.patch.object(torchvision.models.inception.Inception3, "load_state_dict", capture),
    ):
        inception.fid_inception_v3()
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in captured.items():
        if not tensor.is_floating_point():
            continue
        if tensor.dim() == 4:  # conv weight (out, in, kh, kw)
            fan_in = tensor[0].numel()
            captured[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif name.endswith(("bn.weight", "running_var")):
            captured[name] = torch.ones_like(tensor)
        elif name.endswith(("bn.bias", "running_mean")):
            captured[name] = torch.zeros_like(tensor)
        else:  # fc
            captured[name] = torch.randn(tensor.shape, generator=generator) * 0.01
    return captured


def write_random_fid_inception(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_fid_inception_state(seed), path)
    return path


def plant_in_torch_home(torch_home: Path, seed: int = 0) -> Path:
    """The planted weights where torch.hub looks for pytorch-fid's file when TORCH_HOME is `torch_home`."""
    return write_random_fid_inception(torch_home / "hub" / "checkpoints" / INCEPTION_FILE, seed)


if __name__ == "__main__":
    print(plant_in_torch_home(Path(sys.argv[1])))
