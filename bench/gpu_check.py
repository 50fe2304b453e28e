"""The prepared check for a lent GPU: what the full preset costs there, in one command of at most 8 minutes.

Four parts, each within its share of --budget-s (a part that runs out of time records what it skipped):

1. SDXL-Turbo at 512 px, 1 step, through the synthesize stage's own backend, on full-size models built from SDXL's
   configs with random weights (no download; a step costs the same whatever the weights), text-only and with a
   ControlNet, batch 1, 4 and 8, along the speed-up params of synthesize.sdxl_turbo, each kept for the next: fp16
   eager (SDPA), + channels_last, + fuse_qkv, + compile and compile_vae (minutes of warm-up per batch size, so
   only at batch 4 text-only unless --every-batch). The VAE is built as the fp16-fix VAE runs (no fp32 upcast).
2. The reference ViT (224 px, patch 16) training throughput in bf16, eager and compiled.
3. DDPM and GAN training steps per second at the full preset's sizes.
4. The full preset's DAG end to end at reduced counts (a few hundred images a class, a few hundred generator steps,
   1 epoch), on a copy of the project with a random CIFAR-sized dataset and the random SDXL-Turbo of part 1.

With --real DIR (the folder `synthaug download DIR` filled), only SDXL-Turbo runs, on those weights loaded as the
synthesize stage loads them: a few images per class with and without the ControlNet, checked (none non-finite,
constant or a near-duplicate of another), then the speed rows. The check fails after writing its JSON if an
image is broken.

Prints a table with the targets beside the figures and writes metrics/bench/gpu_check.json; a step that fails is
a row with its error, never the end of the check.

    python bench/gpu_check.py                 # on CUDA, 480 s budget
    python bench/gpu_check.py --real DIR      # the downloaded weights: images checked, then timed
    python bench/gpu_check.py --every-batch --budget-s 1500   # every compiled combination too
    python bench/gpu_check.py --cpu-smoke     # every path at tiny sizes on the CPU, in under 3 minutes
"""

from __future__ import annotations

import argparse
import json
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
from synthaug.core.devices import nvidia_driver_version
from synthaug.core.errors import BrokenImages
from synthaug.core.generator_params import SdxlTurboParams, SynthesizeParams
from synthaug.core.param_rules import parse_section
from synthaug.generators import sdxl_turbo
from synthaug.generators.sdxl_turbo import SdxlTurboGenerator, apply_speedups
from synthaug.synthetic.plan import plan_items
from synthaug.tools.compose import compose_params

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
# Each row's params switched on, on top of the rows before it (synthesize.sdxl_turbo keys).
FAST_PATH: tuple[tuple[str, dict[str, bool]], ...] = (
    ("fp16 eager", {}),
    ("+ channels_last", {"channels_last": True}),
    ("+ fuse_qkv", {"fuse_qkv": True}),
    ("+ compile, compile_vae", {"compile": True, "compile_vae": True}),
)
NEAR_DUPLICATE_LEVELS = 2.0  # mean absolute difference (of 255) below which two 32 px images count as one


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


def apply_fast_path_step(generator: SdxlTurboGenerator, flags: dict[str, bool], fail: bool) -> None:
    """One row's params on top of the rows before it, through the stage's own apply_speedups."""
    if fail:
        raise RuntimeError("--fail-step asked this step to fail")
    off = dict.fromkeys(("channels_last", "fuse_qkv", "compile", "compile_vae", "vae_slicing"), False)
    apply_speedups(generator.pipeline, generator.params.model_copy(update={**off, **flags}))
    generator.params = generator.params.model_copy(update=flags)  # compiled: full batches only


def timed_generation(generator: SdxlTurboGenerator, items: list, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    begin = time.perf_counter()
    generator(items[: generator.params.batch_size])  # warm-up: compilation happens here
    synchronize(device)
    warmup = time.perf_counter() - begin
    begin = time.perf_counter()
    images = generator(items)
    synchronize(device)
    seconds = time.perf_counter() - begin
    assert images.shape == (len(items), 32, 32, 3)
    row = {"images_per_s": round(len(items) / seconds, 2), "warmup_s": round(warmup, 1)}
    if device.type == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def sdxl_params(sizes: Sizes, model: Path, controlnet: Path | None, real: Path | None) -> SdxlTurboParams:
    """The stage's section: from the project's params with --real's folders, else for the random pipeline."""
    if real is None:
        return benchmark_params(
            model, controlnet, resolution=sizes.sdxl_resolution, batch_size=1, device=sizes.device, compile=False
        )
    raw = compose_params(ROOT / "conf", [])["synthesize"]
    raw["sdxl_turbo"].update(
        model=str(model),
        controlnet=None if controlnet is None else str(controlnet),
        vae=str(real / "vae") if (real / "vae").is_dir() and sizes.device == "cuda" else None,
        model_revision=None,
        controlnet_revision=None,
        vae_revision=None,
        image_size=None,
        resolution=sizes.sdxl_resolution,
        batch_size=1,
        device=sizes.device,
    )
    raw["sdxl_turbo"].update({k: False for k in ("compile", "compile_vae", "channels_last", "fuse_qkv")})
    return parse_section("synthesize", raw, SynthesizeParams).sdxl_turbo


def quality_row(generator: SdxlTurboGenerator, real: np.ndarray, per_class: int) -> dict:
    """A few images of each CIFAR-10 class, checked: none non-finite or constant, none a near-duplicate."""
    labels = np.arange(len(real)) % len(CIFAR10_CLASSES)
    counts = np.full(len(CIFAR10_CLASSES), per_class)
    items = plan_items(np.arange(len(real)), labels, CIFAR10_CLASSES, counts, generator.params.prompt_templates, 0)
    generator.params = generator.params.model_copy(update={"batch_size": 1})
    try:
        images = generator(items).astype(np.float32)
    except BrokenImages as error:
        return {"images": len(items), "broken": str(error), "ok": False}
    flat = images.reshape(len(images), -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=2)
    pairs = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(distances < NEAR_DUPLICATE_LEVELS, k=1)))]
    return {
        "images": len(items),
        "near_duplicate_pairs": [
            f"{items[i].class_name} {items[i].index} ~ {items[j].class_name} {items[j].index}" for i, j in pairs
        ],
        "min_pair_distance": round(float(distances[np.triu_indices(len(images), 1)].min()), 2),
        "ok": not pairs,
    }


def sdxl_rows(
    sizes: Sizes,
    model: Path,
    controlnet: Path,
    seconds: float,
    every_batch: bool,
    real: Path | None = None,
    fail_step: str | None = None,
) -> list[dict]:
    """Each pipeline (text-only, then with the ControlNet) gets half of `seconds`. Compiling costs minutes per batch
    size (136-154 s on an H100), so unless `every_batch`, only the text-only pipeline compiles, at batch 4."""
    device = torch.device(sizes.device)
    real_images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    real_images[:, 8:24, 8:24] //= 2  # a square: edges for the ControlNet
    items = plan_items(
        np.arange(64), np.arange(64) % 2, ("cat", "dog"), np.array([sizes.sdxl_images, 0]), ["a photo of a {name}"], 0
    )
    rows: list[dict] = []
    steps = FAST_PATH if sizes.compile_sdxl else FAST_PATH[:-1]
    for guided in (False, True):
        deadline = Deadline(seconds / 2)
        pipeline = "sdxl_turbo+controlnet" if guided else "sdxl_turbo"
        params = sdxl_params(sizes, model, controlnet if guided else None, real)
        try:
            generator = SdxlTurboGenerator(params, real_images, 32, device)
        except Exception as error:  # weights that do not load are the finding
            rows.append({"pipeline": pipeline, "path": "load", "error": first_line(error)})
            continue
        if real is not None:
            rows.append({"pipeline": pipeline, "path": "quality", **quality_row(generator, real_images, 2)})
            print(f"check {pipeline:22s} {json.dumps(rows[-1])}", flush=True)
        for step, flags in steps:
            try:
                apply_fast_path_step(generator, flags, fail=step == fail_step)
            except Exception as error:  # a step this diffusers or card cannot take is a finding, not the end
                rows.append({"pipeline": pipeline, "path": step, "error": first_line(error)})
                print(f"sdxl  {pipeline:22s} {step:40s} {rows[-1]['error']}", flush=True)
                continue
            for batch in sizes.sdxl_batches:
                row = {"pipeline": pipeline, "path": step, "batch": batch}
                if step == FAST_PATH[-1][0] and not every_batch and (guided or batch != 4):
                    rows.append({**row, "skipped": "a compilation of its own (--every-batch measures it)"})
                    continue
                if deadline.left() <= 0:
                    rows.append({**row, "skipped": "out of time"})
                    continue
                generator.params = generator.params.model_copy(update={"batch_size": batch})
                try:
                    rows.append({**row, **timed_generation(generator, items, device)})
                except Exception as error:
                    rows.append({**row, "error": first_line(error)})
                shown = f"{rows[-1]['images_per_s']:8.2f} img/s" if "images_per_s" in rows[-1] else rows[-1]["error"]
                print(f"sdxl  {pipeline:22s} {step:40s} batch {batch}: {shown}", flush=True)
        del generator
        sdxl_turbo._cached_pipeline.cache_clear()  # the next pipeline loads afresh, without this one's speed-ups
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


def copy_project(repo: Path) -> Path:
    """The files a stage reads, copied to `repo`: nothing a run wrote, no local settings."""
    for name in PROJECT_FILES:
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "local"))
        else:
            shutil.copy2(source, target)
    return repo


def dag_row(sizes: Sizes, model: Path, controlnet: Path, scratch: Path, deadline: Deadline) -> dict:
    """The preset's DAG on a copy of the project: wall time per stage, and the report's headline."""
    repo = copy_project(scratch / "project")
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
    measured = [
        (r["images_per_s"], r["path"]) for r in result["sdxl"] if r.get("batch") == target_batch and "images_per_s" in r
    ]
    target, why = TARGETS["sdxl_turbo_images_per_s"]
    best = "not measured" if not measured else "{:.2f} img/s ({})".format(*max(measured))
    print(f"\nSDXL-Turbo, best at batch {target_batch}: {best}; target >= {target:.0f} ({why})")
    failed = [f"{r['pipeline']} {r['path']}: {r['error']}" for r in result["sdxl"] if "error" in r]
    for line in failed:
        print(f"failed: {line}")
    for row in (r for r in result["sdxl"] if r["path"] == "quality"):
        print(f"images {row['pipeline']}: {'ok' if row['ok'] else 'BROKEN'} {row.get('broken', '')}")
    if "dag" not in result:
        return
    dag = result["dag"]
    target, why = TARGETS["reference_classifiers_minutes"]
    state = "finished" if dag["finished"] else "did not finish (a stage failed, or its share of the budget ran out)"
    print(
        f"DAG at reduced counts: {state}, {dag['dag_seconds']:.0f} s, of it train stages "
        f"{dag['train_stage_seconds'] / 60:.1f} min; target for {why} at full counts: <= {target:.0f} min"
    )


def gpu_info() -> dict:
    info = {"driver": nvidia_driver_version(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="every path at tiny sizes on the CPU")
    parser.add_argument(
        "--real", type=Path, default=None, help="folder `synthaug download` filled: check those weights"
    )
    parser.add_argument("--budget-s", type=float, default=None, help="seconds in all (default 480; smoke 170)")
    parser.add_argument(
        "--every-batch", action="store_true", help="compile SDXL-Turbo at every batch size and with the ControlNet too"
    )
    parser.add_argument("--fail-step", default=None, help="make this speed-up row fail, to see it reported")
    parser.add_argument("--out", type=Path, default=None, help="default metrics/bench/gpu_check.json")
    parser.add_argument("--summary", type=Path, default=None, help="default metrics/bench.json")
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("bench/gpu_check.py needs a CUDA GPU; --cpu-smoke runs every path at tiny sizes on the CPU")
    sizes = cpu_smoke_sizes() if args.cpu_smoke else gpu_sizes()
    budget = args.budget_s or (170.0 if args.cpu_smoke else 480.0)
    started = time.perf_counter()
    result: dict = {"sdxl": []}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            begin = time.perf_counter()
            if args.real is None:
                model, controlnet = random_sdxl(Path(scratch) / "sdxl", torch.device(sizes.device))
                print(f"random SDXL-Turbo built and saved in {time.perf_counter() - begin:.0f} s")
            else:
                model, controlnet = args.real / "model", args.real / "controlnet"
            share = (1.0 if args.real else 0.4) * budget - (time.perf_counter() - begin)
            result["sdxl"] = sdxl_rows(sizes, model, controlnet, share, args.every_batch, args.real, args.fail_step)
            if args.real is None:
                result["training"] = throughput_rows(sizes, Deadline(0.2 * budget))
                # at least its own share, should the parts before it have overrun theirs
                left = max(budget - (time.perf_counter() - started), 0.4 * budget)
                result["dag"] = dag_row(sizes, model, controlnet, Path(scratch), Deadline(left))
    finally:  # the JSON is written whatever happened above
        result.update(
            {
                "machine": machine_info(),
                "gpu": gpu_info(),
                "command": " ".join(["python", "bench/gpu_check.py", *sys.argv[1:]]),
                "budget_s": budget,
                "seconds": round(time.perf_counter() - started, 1),
                "targets": {key: target for key, (target, _) in TARGETS.items()},
            }
        )
        save_bench("gpu_check", result, out=args.out, **({"summary": args.summary} if args.summary else {}))
    print_summary(result, 4 if 4 in sizes.sdxl_batches else max(sizes.sdxl_batches))
    if not all(row["ok"] for row in result["sdxl"] if row["path"] == "quality"):
        raise SystemExit("bench/gpu_check.py: broken images from the real weights (see the rows above)")
    if any(row["path"] == "load" for row in result["sdxl"]):
        raise SystemExit("bench/gpu_check.py: the weights did not load (see the rows above)")


if __name__ == "__main__":
    main()
