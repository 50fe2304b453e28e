"""What every benchmark script shares: the machine description and where its figures go.

Each script writes its own metrics/bench/<name>.json and its section of metrics/bench.json, the one
file DVC shows as a metric (`dvc metrics show`, `dvc metrics diff` across commits).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from synthaug.core.io import write_json

SUMMARY = Path("metrics/bench.json")


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def save_bench(name: str, payload: dict[str, Any], out: Path | None = None, summary: Path = SUMMARY) -> None:
    """Write `payload` to `out` (default metrics/bench/<name>.json) and as section `name` of `summary`."""
    out = out or summary.parent / "bench" / f"{name}.json"
    write_json(out, payload)
    merged = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    merged[name] = payload
    write_json(summary, merged)
    print(f"wrote {out} and section {name!r} of {summary}")
