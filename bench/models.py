"""Training and sampling throughput of the pipeline's models on this machine, eager vs optimized.

Cases (full-profile sizes from conf/config.yaml unless noted): the reference ViT at 224/16 and at 32/4 and
the reference CNN (train images/s), DDPM and GAN (train steps/s and images/s, sampling images/s), and
pytorch-fid's InceptionV3 feature extraction (random weights: the cost is the architecture's).
On CUDA each case runs eager fp32 and bf16 autocast + channels_last + torch.compile, side by side, and
the table gives the ratio. On a CPU only eager fp32 runs (compiling there costs more than it saves
in a benchmark this short). Inputs are random tensors already on the device: this measures the
models, not the input pipeline. Prints a table and writes metrics/bench/models.json.

    python bench/models.py [--cases vit224 vit32 cnn ddpm_train gan_train ddpm_sample gan_sample inception]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from record import machine_info, save_bench
from synthaug.core.generator_params import DdpmSampleParams, GanSampleParams, TrainGeneratorParams
from synthaug.core.param_rules import parse_section
from synthaug.models.classifiers import ClassifierSpec, build_classifier

CASES = ("vit224", "vit32", "cnn", "ddpm_train", "gan_train", "ddpm_sample", "gan_sample", "inception")


def base_config() -> dict:
    """conf/config.yaml without a profile: the reference-scale (full) values."""
    return yaml.safe_load(Path("conf/config.yaml").read_text(encoding="utf-8"))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds per call after `warmup` calls (compilation happens there)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def autocast(device: torch.device, optimized: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if optimized else contextlib.nullcontext()


def classifier_step(
    kind: str, size: int, options: dict, batch: int, device: torch.device, optimized: bool, compiled: bool | None = None
) -> Callable[[], None]:
    """One AdamW training step on random images; optimized: bf16 autocast, channels_last and (unless `compiled` says
    otherwise) torch.compile."""
    compiled = optimized if compiled is None else compiled
    model = build_classifier(ClassifierSpec(kind, 10, size, options)).to(device)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    if optimized:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        with autocast(device, optimized):
            loss = F.cross_entropy(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def generator_trainer(name: str, config: dict, device: torch.device, optimized: bool):
    from synthaug.generators.training import build_trainer

    raw = dict(config["train_generator"])
    raw["ddpm"] = dict(raw["ddpm"], mixed_precision="bf16" if optimized else "no")
    params = parse_section("train_generator", raw, TrainGeneratorParams)
    trainer = build_trainer(name, params, 32, 10, device)
    if optimized:
        if name == "ddpm":
            trainer.model = torch.compile(trainer.model)
        else:
            trainer.generator, trainer.discriminator = (
                torch.compile(trainer.generator),
                torch.compile(trainer.discriminator),
            )
    return trainer, getattr(params, name).batch_size


def generator_train_step(
    name: str, config: dict, device: torch.device, optimized: bool
) -> tuple[Callable[[], None], int]:
    trainer, batch = generator_trainer(name, config, device, optimized)
    images = torch.rand(batch, 3, 32, 32, device=device) * 2 - 1
    labels = torch.randint(0, 10, (batch,), device=device)
    rng = torch.Generator().manual_seed(0)
    counter = iter(range(10**9))
    context = autocast(device, optimized) if name == "gan" else contextlib.nullcontext()  # DDPM autocasts itself

    def step() -> None:
        with context:
            trainer.train_step(images, labels, rng, next(counter))

    return step, batch


def sampling_step(name: str, config: dict, device: torch.device, optimized: bool) -> tuple[Callable[[], None], int]:
    trainer, _ = generator_trainer(name, config, device, optimized=False)
    sample_raw = config["synthesize"][name]
    if name == "ddpm":
        params = DdpmSampleParams(**sample_raw)
        sampler = trainer.sampler(params)
        if optimized:
            sampler.unet = torch.compile(sampler.unet)
    else:
        params = GanSampleParams(**sample_raw)
        sampler = trainer.sampler(params)
        if optimized:
            sampler.generator = torch.compile(sampler.generator)
    count = params.batch_size
    labels, seeds = np.arange(count) % 10, list(range(count))

    def step() -> None:
        with autocast(device, optimized):
            sampler(labels, seeds)

    return step, count


def inception_step(device: torch.device, optimized: bool, batch: int) -> Callable[[], None]:
    from unittest import mock

    import torchvision
    from pytorch_fid import inception

    # Random weights: build pytorch-fid's FID Inception without its download (the cost is the architecture's).
    with (
        mock.patch.object(inception, "load_state_dict_from_url", return_value={}),
        mock.patch.object(torchvision.models.inception.Inception3, "load_state_dict", lambda *a, **k: None),
    ):
        model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval().to(device)
    images = torch.rand(batch, 3, 32, 32, device=device)
    if optimized:
        model = torch.compile(model.to(memory_format=torch.channels_last))

    @torch.inference_mode()
    def step() -> None:
        with autocast(device, optimized):
            model(images)

    return step


def run_case(case: str, config: dict, device: torch.device, optimized: bool, repeats: int) -> dict:
    vit = dict(config["train"]["vit"])
    if case in ("vit224", "vit32", "cnn"):
        size, batch = (224, 32) if case == "vit224" else (32, 256)
        options = dict(vit, patch_size=16 if case == "vit224" else 4) if case != "cnn" else config["train"]["cnn"]
        step, unit, count = (
            classifier_step("cnn" if case == "cnn" else "vit", size, options, batch, device, optimized),
            "train images/s",
            batch,
        )
    elif case.endswith("_train"):
        (step, count), unit = (
            generator_train_step(case.removesuffix("_train"), config, device, optimized),
            "train images/s",
        )
    elif case.endswith("_sample"):
        (step, count), unit = sampling_step(case.removesuffix("_sample"), config, device, optimized), "sampled images/s"
    else:
        count = 200
        step, unit = inception_step(device, optimized, count), "feature images/s"
    seconds = timed(step, device, warmup=3, repeats=repeats)
    return {
        "case": case,
        "mode": "bf16+channels_last+compile" if optimized else "eager fp32",
        "batch": count,
        "seconds_per_batch": round(seconds, 5),
        "unit": unit,
        "throughput": round(count / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # "fp32" means fp32: the speed-up is the optimized mode's
    config = base_config()
    rows = []
    for case in args.cases:
        for optimized in (False, True) if device.type == "cuda" else (False,):
            rows.append(run_case(case, config, device, optimized, args.repeats))
            row = rows[-1]
            print(
                f"{case:12s} {row['mode']:28s} batch {row['batch']:5d}: {row['throughput']:10.1f} {row['unit']}",
                flush=True,
            )
            save_bench("models", report(rows, device, args))
    print("\ncase          optimized / eager")
    for case in args.cases:
        modes = {row["mode"]: row["throughput"] for row in rows if row["case"] == case}
        if len(modes) == 2:
            print(f"{case:12s}  {modes['bf16+channels_last+compile'] / modes['eager fp32']:.2f}x")


def report(rows: list[dict], device: torch.device, args: argparse.Namespace) -> dict:
    machine = machine_info()
    return {
        "machine": machine,
        "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__},
        "command": "python bench/models.py --cases "
        + " ".join(args.cases)
        + f" --device {args.device} --repeats {args.repeats}",
        "results": rows,
    }


if __name__ == "__main__":
    main()
