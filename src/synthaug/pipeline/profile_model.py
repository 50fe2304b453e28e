"""What a classifier costs: parameters, FLOPs, latency, throughput, peak memory, and a profiler trace."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from synthaug.core.devices import resolve_device
from synthaug.core.io import atomic_path, rows_csv, write_json
from synthaug.core.params import ProfileModelParams
from synthaug.core.seeding import seed_everything
from synthaug.core.tracking import run_name, stage_run
from synthaug.models.checkpoint import load_classifier
from synthaug.models.classifiers import (
    ClassifierSpec,
    count_parameters,
    trainable_parameters,
)


@dataclass(frozen=True)
class ModelProfile:
    classifier: str
    device: str
    image_size: int
    parameters: int
    trainable_parameters: int
    flops_per_image: int  # forward pass; counted by torch's FlopCounterMode (matmuls, convolutions, attention)
    macs_per_image: int  # flops / 2: one multiply-accumulate is two FLOPs
    latency_ms: float  # median forward time of one image
    throughput_images_per_s: float  # forward passes of `batch_size` images, no gradients
    batch_size: int
    peak_memory_mb: float  # CUDA: peak allocated; CPU: peak resident memory above the level before the timed passes

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def count_flops(model: nn.Module, image_size: int, device: torch.device) -> int:
    """FLOPs of one forward pass of a single image."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    return int(counter.get_total_flops())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resident_bytes(pid: int | str = "self") -> int:
    """A process's current resident set size, from /proc (Linux); 0 where it is not available or gone."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@contextmanager
def peak_memory(device: torch.device, interval_s: float = 0.001) -> Iterator[list[float]]:
    """Yield a one-element list that holds, on exit, the peak memory in MB used inside the block.

    CUDA has exact allocator statistics; on the CPU a thread samples the resident set size, so the figure
    is the peak above the level at entry (activations and workspaces, not the weights already loaded).
    """
    result = [0.0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        result[0] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    baseline = resident_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_bytes())
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], resident_bytes())
        result[0] = (peak[0] - baseline) / 2**20


def profile_label(spec: ClassifierSpec) -> str:
    """The classifier as the report's cost table names it: a timm model by its name, and a probe as a probe."""
    if spec.kind != "timm":
        return spec.kind
    probe = ", linear probe" if spec.options.get("linear_probe") else ""
    return f"timm ({spec.options['name']}{probe})"


@torch.no_grad()
def time_forward(model: nn.Module, inputs: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Seconds per forward pass, `repeats` times after `warmup` untimed passes."""
    model.eval()
    for _ in range(warmup):
        model(inputs)
    _synchronize(inputs.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(inputs)
        _synchronize(inputs.device)
        times.append(time.perf_counter() - start)
    return times


def profile_classifier(
    model: nn.Module, spec: ClassifierSpec, device: torch.device, batch_size: int, warmup: int, repeats: int
) -> ModelProfile:
    model = model.to(device)
    flops = count_flops(model, spec.image_size, device)
    single = torch.zeros(1, 3, spec.image_size, spec.image_size, device=device)
    batch = torch.randn(batch_size, 3, spec.image_size, spec.image_size, generator=torch.Generator().manual_seed(0)).to(
        device
    )
    latency = statistics.median(time_forward(model, single, warmup, repeats))
    with peak_memory(device) as peak:
        batch_times = time_forward(model, batch, warmup, repeats)
    return ModelProfile(
        classifier=profile_label(spec),
        device=device.type,
        image_size=spec.image_size,
        parameters=count_parameters(model),
        trainable_parameters=sum(p.numel() for p in trainable_parameters(model)),
        flops_per_image=flops,
        macs_per_image=flops // 2,
        latency_ms=round(latency * 1000, 4),
        throughput_images_per_s=round(batch_size / statistics.median(batch_times), 2),
        batch_size=batch_size,
        peak_memory_mb=round(peak[0], 2),
    )


def trace_training_steps(
    model: nn.Module, spec: ClassifierSpec, device: torch.device, batch_size: int, steps: int, out: Path, seed: int = 0
) -> Path:
    """A torch.profiler chrome trace (open in chrome://tracing or Perfetto) of `steps` AdamW training steps."""
    from torch.profiler import ProfilerActivity, profile, record_function

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, spec.image_size, spec.image_size, generator=generator).to(device)
    targets = torch.randint(0, spec.num_classes, (batch_size,), generator=generator).to(device)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True, profile_memory=True) as profiler:
        for step in range(steps):
            with record_function(f"train_step_{step}"):
                loss = nn.functional.cross_entropy(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            _synchronize(device)
    out.parent.mkdir(parents=True, exist_ok=True)
    profiler.export_chrome_trace(str(out))
    return out


def profiles_csv(profiles: list[ModelProfile]) -> str:
    return rows_csv([profile.to_dict() for profile in profiles])


TRACE_FILE = "trace.json"


def profile_model(params: ProfileModelParams, classifier: str, model_dir: Path, out: Path, traces: Path) -> str:
    """The profile_model stage: the classifier's cost into `out` (.json), a training trace into `traces`."""
    device = resolve_device(params.device, "profile_model.device")
    seed_everything(0)

    model, spec = load_classifier(model_dir)
    name = run_name("profile_model", classifier)
    with stage_run(name, {"profile_model": params.model_dump()}, {"classifier": classifier}) as tracker:
        profile = profile_classifier(model, spec, device, params.batch_size, params.warmup, params.repeats)
        with atomic_path(traces, directory=True) as tmp:
            # Never an empty folder: DVC warns about those and does not restore them.
            (tmp / "README.txt").write_text(
                f"{TRACE_FILE}: torch.profiler chrome trace of profile_model.steps={params.steps} training steps of "
                f"{classifier} "
                "(none when 0). Open it in https://ui.perfetto.dev or chrome://tracing.\n",
                encoding="utf-8",
            )
            if params.steps > 0:
                trace_training_steps(model, spec, device, params.batch_size, params.steps, tmp / TRACE_FILE)
        write_json(out, profile.to_dict())
        tracker.log_metrics({k: v for k, v in profile.to_dict().items() if isinstance(v, (int, float))})
        tracker.log_artifact(out)
        if params.steps > 0:
            tracker.log_artifact(traces / TRACE_FILE)
    trace = f", trace of {params.steps} steps in {traces / TRACE_FILE}" if params.steps > 0 else ""
    return (
        f"{name}: {profile.parameters:,} parameters, {profile.macs_per_image / 1e6:.1f} MMACs/image, "
        f"{profile.latency_ms:.2f} ms/image, {profile.throughput_images_per_s:.0f} images/s on {device.type}{trace}"
    )
