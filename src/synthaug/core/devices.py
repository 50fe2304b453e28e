"""Device choice from a params value (auto picks CUDA when usable; an NVIDIA GPU torch cannot use fails clearly),
and batch copies."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path

import torch

from synthaug.core.errors import ModelLoadError

# Where the NVIDIA kernel module reports its version, and the device nodes it creates.
NVIDIA_VERSION_FILE = Path("/proc/driver/nvidia/version")
NVIDIA_DEVICE_GLOB = "/dev/nvidia[0-9]*"
# The oldest Linux driver each CUDA major version runs on (NVIDIA's CUDA toolkit release notes).
MIN_DRIVER_FOR_CUDA = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU batch onto `device`: through pinned memory and a non-blocking copy on CUDA, as is on the CPU."""
    if device.type != "cuda":
        return batch
    return batch.pin_memory().to(device, non_blocking=True)


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver's version where an NVIDIA GPU is present ('unknown' if only its device node shows)."""
    if NVIDIA_VERSION_FILE.is_file():
        found = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", NVIDIA_VERSION_FILE.read_text())
        if found:
            return found.group(1)
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            shown = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.split()
            return shown[0] if shown else "unknown"
        except (OSError, subprocess.SubprocessError):
            return "unknown"
    return "unknown" if glob.glob(NVIDIA_DEVICE_GLOB) else None


def unusable_gpu_message(key: str, driver: str) -> str:
    cuda = torch.version.cuda
    if cuda is None:
        need = "this torch is a CPU-only build: install the CUDA build the lock pins"
    else:
        minimum = MIN_DRIVER_FOR_CUDA.get(int(cuda.split(".")[0]))
        need = f"CUDA {cuda} needs driver {minimum} or newer" if minimum else f"it needs a driver for CUDA {cuda}"
        need += ": update the driver, or install a torch build for the CUDA your driver supports"
    return (
        f"{key}=auto: an NVIDIA GPU is present (driver {driver}) but torch {torch.__version__} cannot use it; "
        f"{need}. Set {key}=cpu to run on the CPU on purpose"
    )


def resolve_device(device: str, key: str) -> torch.device:
    """`device` is auto | cpu | cuda; `key` is the params key named in the error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        driver = nvidia_driver_version()
        if driver is not None:
            raise ModelLoadError(unusable_gpu_message(key, driver))
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        driver = nvidia_driver_version()
        raise ModelLoadError(
            unusable_gpu_message(key, driver).replace(f"{key}=auto", f"{key}=cuda")
            if driver is not None
            else f"{key}: cuda requested but no CUDA device is available"
        )
    return torch.device(device)
