"""The prepared check for a lent GPU: what the full preset costs there, in one command of at most 8 minutes.

Four parts, each within its share of --budget-s (a part that runs out of time records what it skipped):

1. SDXL-Turbo at 512 px, 1 step, through the synthesize stage's own backend, on full-size models built from SDXL's
   configs with random weights (no download; a step costs the same whatever the weights), text-only and with a
   ControlNet, batch 1, 4 and 8, along diffusers' fast path, each step kept for the next: fp16 eager (SDPA is
   diffusers' default attention), + channels_last, + fused QKV projections, + torch.compile of the UNet and the VAE
   decoder (its warm-up is minutes per batch size, so only at batch 4 text-only unless --every-batch). The VAE is
   the model's own: the fp16-fix VAE the params name has the same architecture.
2. The reference ViT (224 px, patch 16) training throughput in bf16, eager and compiled.
3. DDPM and GAN training steps per second at the full preset's sizes.
4. The full preset's DAG end to end at reduced counts (a few hundred images a class, a few hundred generator steps,
   1 epoch), on a copy of the project with a random CIFAR-sized dataset and the random SDXL-Turbo of part 1.

Prints a table with the targets beside the figures and writes metrics/bench/gpu_check.json.

    python bench/gpu_check.py                 # on CUDA, 480 s budget
    python bench/gpu_check.py --every-batch --budget-s 1500   # every compiled combination too
    python bench/gpu_check.py --cpu-smoke     # every path at tiny sizes on the CPU, in under 3 minutes
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from models import base_config, classifier_step, generator_train_step, synchronize, timed
from pipeline import run_and_sample
from record import machine_info, save_bench
from sdxl_full import benchmark_params, build_full_size_sdxl
from synthaug.core.params import compose_params
from synthaug.generators.sdxl_turbo import SdxlTurboGenerator
from synthaug.synthetic.plan import plan_items

ROOT = Path(__file__).resolve().parent.parent
# What the DAG part copies: everything a stage reads, nothing a run wrote.
PROJECT_FILES = ("dvc.yaml", "conf", "stages", "src", ".dvc/config", ".dvcignore", ".gitignore", "metrics/sweeps")
TARGETS = {
    "sdxl_turbo_images_per_s": (
        40.0,
        "SDXL-Turbo 512 px, 1 step, batch 4, on an H100-class card (the best published "
        "A100 figure is about 29 with ONNX Runtime + TensorRT; torch.compile about 22)",
    ),
    "reference_classifiers_minutes": (15.0, "the reference study's classifiers, 3 seeds"),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FAST_PATH = ("fp16 eager", "+ channels_last", "+ fused QKV", "+ torch.compile UNet and VAE decoder")


@dataclass(frozen=True)
class Sizes:
    """What each part runs at: the GPU's sizes, or tiny ones for the CPU smoke run."""

    device: str
    sdxl_resolution: int
    sdxl_batches: tuple[int, ...]
    sdxl_images: int  # per timed batch size
    compile_sdxl: bool
    vit_image_size: int
    vit_batch: int
    generator_config: dict  # conf/config.yaml's train_generator at the full preset's sizes, or shrunk
    dag_train_per_class: int
    dag_test_per_class: int
    dag_overrides: tuple[str, ...]


def gpu_sizes() -> Sizes:
    return Sizes(
        device="cuda",
        sdxl_resolution=512,
        sdxl_batches=(4, 1, 8),  # batch 4 first: the target's, measured before time runs out
        sdxl_images=32,
        compile_sdxl=True,
        vit_image_size=224,
        vit_batch=128,
        generator_config=base_config(),
        dag_train_per_class=300,
        dag_test_per_class=100,
        dag_overrides=(
            "preset=full",
            "imbalance.val_per_class=30",
            "train.epochs=1",
            "train_generator.ddpm.steps=300",
            "train_generator.gan.steps=300",
            "train_generator.checkpoint_every=100",
            "train_generator.sample_every=100",
            "experiment.generator_runs=shared",  # one SDXL-Turbo draw, not three, in the time there is
        ),
    )


def cpu_smoke_sizes() -> Sizes:
    config = base_config()
    config["train_generator"]["ddpm"].update(
        block_out_channels=[8, 16], layers_per_block=1, attention=False, batch_size=4, mixed_precision="no"
    )
    config["train_generator"]["gan"].update(base_channels=8, latent_dim=8, batch_size=4)
    return Sizes(
        device="cpu",
        sdxl_resolution=64,
        sdxl_batches=(1, 2),
        sdxl_images=2,
        compile_sdxl=False,  # inductor's CPU compile of the UNet alone is minutes; the GPU run times it
        vit_image_size=32,
        vit_batch=8,
        generator_config=config,
        dag_train_per_class=12,
        dag_test_per_class=4,
        dag_overrides=(
            "preset=reference",  # the smallest matrix through every synthetic stage: SDXL-Turbo, CAS, fid, report
            "experiment.seeds=[0]",
            "imbalance.val_per_class=2",
            "train.epochs=1",
            "train.image_size=32",
            "train.vit.patch_size=8",
            "train.vit.hidden_size=32",
            "train.vit.num_hidden_layers=1",
            "train.vit.intermediate_size=32",
            "synthesize.sdxl_turbo.resolution=64",  # the canny detector rounds sizes to multiples of 64
            "synthesize.sdxl_turbo.image_size=64",  # stored sharper than the 32 px real images, as the preset's 224
            "synthesize.sdxl_turbo.device=cpu",
        ),
    )


class Deadline:
    """A part's share of the budget: `left()` seconds remain of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def random_sdxl(folder: Path, device: torch.device) -> tuple[Path, Path]:
    """A random SDXL-Turbo pipeline and canny ControlNet: full size on CUDA, tiny on the CPU."""
    if device.type == "cuda":
        return build_full_size_sdxl(folder)
    from synthaug.tools.tiny import build_tiny_sdxl

    return build_tiny_sdxl(folder)


def apply_fast_path_step(pipeline, step: str) -> None:
    """One step of diffusers' documented fast path, on top of the ones before it."""
    if step == "+ channels_last":
        pipeline.unet.to(memory_format=torch.channels_last)
        pipeline.vae.to(memory_format=torch.channels_last)
    elif step == "+ fused QKV":
        pipeline.unet.fuse_qkv_projections()
        pipeline.vae.fuse_qkv_projections()
    elif step.startswith("+ torch.compile"):
        pipeline.unet = torch.compile(pipeline.unet, fullgraph=True)
        pipeline.vae.decode = torch.compile(pipeline.vae.decode, fullgraph=True)


def timed_generation(generator: SdxlTurboGenerator, items: list, device: torch.device) -> dict:
    begin = time.perf_counter()
    generator(items[: generator.params.batch_size])  # warm-up: compilation happens here
    synchronize(device)
    warmup = time.perf_counter() - begin
    begin = time.perf_counter()
    images = generator(items)
    synchronize(device)
    seconds = time.perf_counter() - begin
    assert images.shape == (len(items), 32, 32, 3)
    return {"images_per_s": round(len(items) / seconds, 2), "warmup_s": round(warmup, 1)}


def sdxl_rows(sizes: Sizes, model: Path, controlnet: Path, seconds: float, every_batch: bool) -> list[dict]:
    """Each pipeline (text-only, then with the ControlNet) gets half of `seconds`. Compiling costs minutes per batch
    size (136-154 s on an H100), so unless `every_batch`, only the text-only pipeline compiles, at batch 4."""
    device = torch.device(sizes.device)
    real = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    items = plan_items(
        np.arange(64), np.arange(64) % 2, ("cat", "dog"), np.array([sizes.sdxl_images, 0]), ["a photo of a {name}"], 0
    )
    rows: list[dict] = []
    steps = FAST_PATH if sizes.compile_sdxl else FAST_PATH[:-1]
    for guided in (False, True):
        deadline = Deadline(seconds / 2)
        params = benchmark_params(
            model,
            controlnet if guided else None,
            resolution=sizes.sdxl_resolution,
            batch_size=1,
            device=sizes.device,
            compile=False,
        )
        generator = SdxlTurboGenerator(params, real, 32, device)
        for step in steps:
            try:
                apply_fast_path_step(generator.pipeline, step)
            except Exception as error:  # a step this diffusers or card cannot take is a finding, not the end
                rows.append(
                    {
                        "pipeline": "sdxl_turbo+controlnet" if guided else "sdxl_turbo",
                        "path": step,
                        "error": first_line(error),
                    }
                )
                continue
            for batch in sizes.sdxl_batches:
                row = {"pipeline": "sdxl_turbo+controlnet" if guided else "sdxl_turbo", "path": step, "batch": batch}
                if step == FAST_PATH[-1] and not every_batch and (guided or batch != 4):
                    rows.append({**row, "skipped": "a compilation of its own (--every-batch measures it)"})
                    continue
                if deadline.left() <= 0:
                    rows.append({**row, "skipped": "out of time"})
                    continue
                generator.params = params.model_copy(update={"batch_size": batch})
                try:
                    rows.append({**row, **timed_generation(generator, items, device)})
                except Exception as error:
                    rows.append({**row, "error": first_line(error)})
                shown = f"{rows[-1]['images_per_s']:8.2f} img/s" if "images_per_s" in rows[-1] else rows[-1]["error"]
                print(f"sdxl  {row['pipeline']:22s} {step:40s} batch {batch}: {shown}", flush=True)
        del generator
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"


def throughput_rows(sizes: Sizes, deadline: Deadline) -> list[dict]:
    """The ViT in bf16 (eager, compiled), and the DDPM and GAN training steps, each timed as bench/models.py does."""
    device = torch.device(sizes.device)
    vit = dict(sizes.generator_config["train"]["vit"], patch_size=16 if sizes.vit_image_size == 224 else 8)
    # the generators eager fp32, as bench/models.py's H100 table has them (compiling them would eat the budget)
    cases: list[tuple[str, str, Callable[[], tuple[Callable[[], None], int]]]] = [
        (name, "fp32 eager", lambda name=name: generator_train_step(name, sizes.generator_config, device, False))
        for name in ("gan", "ddpm")
    ]
    cases += [
        (
            "vit",
            mode,
            lambda compiled=compiled: (
                classifier_step("vit", sizes.vit_image_size, vit, sizes.vit_batch, device, True, compiled),
                sizes.vit_batch,
            ),
        )
        for mode, compiled in (("bf16 eager", False), ("bf16 compiled", True))
    ]
    rows = []
    for case, mode, build in cases:
        if deadline.left() <= 0:
            rows.append({"case": case, "mode": mode, "skipped": "out of time"})
            continue
        step, batch = build()
        seconds = timed(step, device, warmup=3, repeats=5 if sizes.device == "cuda" else 2)
        rows.append(
            {
                "case": case,
                "mode": mode,
                "batch": batch,
                "steps_per_s": round(1.0 / seconds, 2),
                "train_images_per_s": round(batch / seconds, 1),
            }
        )
        print(f"train {case:5s} {mode:14s} batch {batch:4d}: {rows[-1]['steps_per_s']:8.2f} steps/s")
    return rows


def random_cifar_archive(folder: Path, train_per_class: int, test_per_class: int) -> Path:
    """A CIFAR-10-shaped ImageFolder archive of random 32 px images (the DAG's cost does not depend on content)."""
    rng = np.random.default_rng(0)
    images = folder / "images"
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for index, name in enumerate(CIFAR10_CLASSES):
            target = images / split / name
            target.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., index % 3] //= 2  # the classes differ a little, as a classifier needs
                Image.fromarray(pixels).save(target / f"{i:05d}.png")
    archive = folder / "cifar10-random.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(images.rglob("*.png")):
            tar.add(file, arcname=file.relative_to(images).as_posix())
    return archive


def dag_row(sizes: Sizes, model: Path, controlnet: Path, scratch: Path, deadline: Deadline) -> dict:
    """The preset's DAG on a copy of the project: wall time per stage, and the report's headline."""
    repo = scratch / "project"
    for name in PROJECT_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "local"))
        else:
            shutil.copy2(source, target)
    archive = random_cifar_archive(scratch, sizes.dag_train_per_class, sizes.dag_test_per_class)
    overrides = [
        *sizes.dag_overrides,
        f"fetch.archive={archive}",
        f"synthesize.sdxl_turbo.model={model}",
        f"synthesize.sdxl_turbo.controlnet={controlnet}",
        "synthesize.sdxl_turbo.vae=null",
        f"synthesize.eval_per_class={sizes.dag_test_per_class}",
        "fid.feature_extractor=classifier",  # no Inception download; the classifier's features
    ]
    params = compose_params(repo / "conf", overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "gpu check"]):
        subprocess.run(command, cwd=repo, check=True, capture_output=True, env=git_env())
    print(f"dag   {' '.join(sizes.dag_overrides)}")
    wall, stages = run_and_sample(
        ["dvc", "repro"], repo, env=dag_env(repo), timeout_s=max(deadline.left(), 1.0), check=False
    )
    report = repo / "metrics/report.md"
    finished = report.is_file() and all("seconds" in s for s in stages)
    return {
        "overrides": list(sizes.dag_overrides),
        "train_images_per_class_before_the_cut": sizes.dag_train_per_class,
        "finished": finished,
        "dag_seconds": round(wall, 1),
        "stages": {s["stage"]: s.get("seconds") for s in stages},
        "train_stage_seconds": round(sum(s.get("seconds", 0.0) for s in stages if s["stage"].startswith("train_")), 1),
        "report_headline": next((line for line in report.read_text().splitlines() if "| baseline |" in line), None)
        if finished
        else None,
    }


def git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "gpu-check",
        "GIT_AUTHOR_EMAIL": "gpu-check@localhost",
        "GIT_COMMITTER_NAME": "gpu-check",
        "GIT_COMMITTER_EMAIL": "gpu-check@localhost",
    }


def dag_env(repo: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in git_env().items() if not k.startswith(("MLFLOW_", "DVC_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "DVC_NO_ANALYTICS": "1",
    }


def print_summary(result: dict, target_batch: int) -> None:
    measured = [r["images_per_s"] for r in result["sdxl"] if r["batch"] == target_batch and "images_per_s" in r]
    target, why = TARGETS["sdxl_turbo_images_per_s"]
    best = f"{max(measured):.2f} img/s" if measured else "not measured"
    print(f"\nSDXL-Turbo, best at batch {target_batch}: {best}; target >= {target:.0f} ({why})")
    dag = result["dag"]
    target, why = TARGETS["reference_classifiers_minutes"]
    state = "finished" if dag["finished"] else "did not finish (a stage failed, or its share of the budget ran out)"
    print(
        f"DAG at reduced counts: {state}, {dag['dag_seconds']:.0f} s, of it train stages "
        f"{dag['train_stage_seconds'] / 60:.1f} min; target for {why} at full counts: <= {target:.0f} min"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="every path at tiny sizes on the CPU")
    parser.add_argument("--budget-s", type=float, default=None, help="seconds in all (default 480; smoke 170)")
    parser.add_argument(
        "--every-batch", action="store_true", help="compile SDXL-Turbo at every batch size and with the ControlNet too"
    )
    parser.add_argument("--out", type=Path, default=None, help="default metrics/bench/gpu_check.json")
    parser.add_argument("--summary", type=Path, default=None, help="default metrics/bench.json")
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("bench/gpu_check.py needs a CUDA GPU; --cpu-smoke runs every path at tiny sizes on the CPU")
    sizes = cpu_smoke_sizes() if args.cpu_smoke else gpu_sizes()
    budget = args.budget_s or (170.0 if args.cpu_smoke else 480.0)
    started = time.perf_counter()
    # shares of the budget: SDXL 40 % (its model building included), the throughputs 20 %, the DAG what is left
    with tempfile.TemporaryDirectory() as scratch:
        begin = time.perf_counter()
        model, controlnet = random_sdxl(Path(scratch) / "sdxl", torch.device(sizes.device))
        print(f"random SDXL-Turbo built and saved in {time.perf_counter() - begin:.0f} s")
        result = {
            "sdxl": sdxl_rows(sizes, model, controlnet, 0.4 * budget - (time.perf_counter() - begin), args.every_batch)
        }
        result["training"] = throughput_rows(sizes, Deadline(0.2 * budget))
        # at least its own share, should the parts before it have overrun theirs
        left = max(budget - (time.perf_counter() - started), 0.4 * budget)
        result["dag"] = dag_row(sizes, model, controlnet, Path(scratch), Deadline(left))
    result.update(
        {
            "machine": machine_info(),
            "command": "python bench/gpu_check.py"
            + (" --cpu-smoke" if args.cpu_smoke else "")
            + (" --every-batch" if args.every_batch else ""),
            "budget_s": budget,
            "seconds": round(time.perf_counter() - started, 1),
            "targets": {key: target for key, (target, _) in TARGETS.items()},
        }
    )
    print_summary(result, 4 if 4 in sizes.sdxl_batches else max(sizes.sdxl_batches))
    save_bench("gpu_check", result, out=args.out, **({"summary": args.summary} if args.summary else {}))


if __name__ == "__main__":
    main()
