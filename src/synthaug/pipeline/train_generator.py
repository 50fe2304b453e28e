"""The train_generator stage: train one of the pipeline's own generators (ddpm, gan) on the imbalanced split.

One run per `experiment.generator_runs` entry (per seed, or one shared): models/generators/<g>/<run>/, curves in
metrics/generators/<g>/<run>/; `train_generator.run_processes` of them at once on the CPU, each in a worker process.
Runs unchanged under torchrun / accelerate launch: DDP over the processes, rank 0 logs and writes. Pretrained
generators (sdxl_turbo) have nothing to train: their entry only records that, so every generator has a
models/generators/<g>/<run> folder for the synthesize stage to depend on.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from synthaug.core.devices import resolve_device
from synthaug.core.distributed import Ranks, main_rank_results, process_group, rank_done
from synthaug.core.generator_params import TrainGeneratorParams
from synthaug.core.generator_runs import generator_run_seed, generator_runs
from synthaug.core.io import atomic_path, fingerprint, rows_csv, work_folder, write_json, write_text
from synthaug.core.params import ExperimentParams
from synthaug.core.plots import loss_curves_figure, save_figure, save_png
from synthaug.core.seeding import seed_everything
from synthaug.core.tracking import main_rank_run, prepare_store, run_name
from synthaug.core.variants import TRAINED_GENERATORS
from synthaug.core.workers import jobs_at_once, map_in_processes
from synthaug.data.storage import ImageSet, load_image_set, load_index_arrays
from synthaug.generators.backends import GENERATOR_FILE
from synthaug.generators.training import (
    LoopResult,
    LoopSettings,
    build_trainer,
    class_grid,
    preview_sampler,
    train_generator_loop,
)


@dataclass(frozen=True)
class GeneratorPaths:
    """The train_generator stage's inputs and outputs (dvc.yaml names them); each output holds one folder per run."""

    data: Path  # the fetched dataset
    splits: Path  # the imbalance stage's indices: the generators learn from the imbalanced split only
    out: Path  # <run>/: the exported weights and generator.json
    curves: Path  # <curves>.json summary; <curves>/<run>/: loss.csv, loss.png, samples.png


def record_pretrained(generator: str, runs: list[str], out: Path, curves: Path) -> str:
    """A pretrained generator's entry: the folders synthesize depends on, saying there was nothing to train."""
    with atomic_path(out, directory=True) as tmp:
        for run in runs:
            write_json(tmp / run / GENERATOR_FILE, {"generator": generator, "trained": False})
    write_json(curves.with_suffix(".json"), {"trained": False, "runs": {run: {"trained": False} for run in runs}})
    with atomic_path(curves, directory=True) as folder:
        for run in runs:
            write_text(folder / run / "loss.csv", "step\n")
    return f"{generator} is pretrained: nothing to train"


def publish(
    generator: str,
    trainer,
    dataset: ImageSet,
    settings: LoopSettings,
    out: Path,
    curves: Path,
    result: LoopResult,
    work: Path,
) -> None:
    """The exported weights with their generator.json, and the loss curves and last sample grid. The work folder
    stays until every run is published, so that a rerun after a crash resumes the finished runs at their end."""
    with atomic_path(out, directory=True) as tmp:
        trainer.export(tmp)
        write_json(
            tmp / GENERATOR_FILE,
            {
                "generator": generator,
                "trained": True,
                "class_names": list(dataset.class_names),
                "image_size": int(dataset.images.shape[1]),
                "steps": settings.steps,
            },
        )
    with atomic_path(curves, directory=True) as folder:
        write_text(folder / "loss.csv", rows_csv(result.history))
        save_figure(loss_curves_figure(result.history, f"{generator} training"), folder / "loss.png")
        shutil.copy(sorted((work / "samples").glob("*.png"))[-1], folder / "samples.png")


def train_run(
    generator: str, run: str, params: TrainGeneratorParams, paths: GeneratorPaths, ranks: Ranks
) -> dict | None:
    """Train, publish and summarize one generator run (None on ranks other than the main one)."""
    seed = generator_run_seed(params.seed, run)
    seed_everything(seed)
    dataset = load_image_set(paths.data / "train.npz")
    train_set = dataset.subset(load_index_arrays(paths.splits)["train"])  # imbalanced train only: nothing leaks
    device = resolve_device(params.device, "train_generator.device")
    trainer = build_trainer(generator, params, dataset.images.shape[1], dataset.num_classes, device, ranks)
    # The run's seed decides the batches and the noise as well as the initial weights: an independent draw.
    settings = replace(LoopSettings.from_params(params, generator), seed=seed)
    # Everything that decides the weights: a half-done work folder from other inputs is discarded, not resumed.
    context = {"params": params.model_dump(), "generator": generator, "seed": seed, "device": device.type}
    digest = fingerprint(context | train_set.digest())
    work = work_folder(paths.out) / run
    preview = preview_sampler(trainer, params, dataset.num_classes)
    name = run_name("train_generator", generator) + f"/{run}"
    tags = {"generator": generator, "generator_run": run}
    logged = {"train_generator": params.model_dump(), "generator_run_seed": seed}
    with main_rank_run(ranks.is_main, name, logged, tags) as tracker:

        def log_samples(step: int) -> None:
            path = work / "samples" / f"step{step:07d}.png"
            save_png(class_grid(preview, dataset.num_classes, params.samples_per_class, seed), path)
            tracker.log_artifact(path)

        start = time.perf_counter()
        result = train_generator_loop(
            trainer,
            train_set,
            settings,
            work,
            digest,
            on_log=lambda step, row: tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step),
            on_samples=log_samples,
            ranks=ranks,
        )
        seconds = time.perf_counter() - start
        if not ranks.is_main:
            return None
        publish(generator, trainer, dataset, settings, paths.out / run, paths.curves / run, result, work)
        final = {k: v for k, v in result.history[-1].items() if k != "step"}
        steps_run = settings.steps - result.resumed_from
        summary = {
            "trained": True,
            "seed": seed,
            "steps": settings.steps,
            "train_images": len(train_set),
            "seconds": round(seconds, 2),
            "steps_per_second": round(steps_run / seconds, 3),
            "resumed_from_step": result.resumed_from,
            "device": device.type,
            "torch_threads": torch.get_num_threads(),
            **{f"final_{k}": v for k, v in final.items()},
        }
        tracker.log_metrics({"seconds": seconds, "steps_per_second": steps_run / seconds})
        tracker.log_artifact(paths.curves / run / "loss.png")
    return summary


def train_run_alone(generator: str, run: str, params: TrainGeneratorParams, paths: GeneratorPaths) -> dict:
    """One run in a worker process of its own (one rank of one)."""
    summary = train_run(generator, run, params, paths, Ranks())
    assert summary is not None  # the only rank is the main one
    return summary


def runs_summary(runs: dict[str, dict]) -> dict:
    """metrics/generators/<g>.json: what every run shares, the compute of all runs together, and each run."""
    first = next(iter(runs.values()))
    return {
        "trained": True,
        "steps": first["steps"],
        "train_images": first["train_images"],
        "seconds": round(sum(r["seconds"] for r in runs.values()), 2),
        "device": first["device"],
        "runs": runs,
    }


def train_generator_runs(
    generator: str, params: TrainGeneratorParams, experiment: ExperimentParams, paths: GeneratorPaths
) -> str:
    """Every run of one generator (experiment.generator_runs), trained and published; the summary line."""
    runs = generator_runs(experiment.generator_runs, experiment.seeds)
    if generator not in TRAINED_GENERATORS:
        return record_pretrained(generator, runs, paths.out, paths.curves)
    device = resolve_device(params.device, "train_generator.device").type
    processes = jobs_at_once(params.run_processes, len(runs), device)
    if processes > 1:
        prepare_store()
        calls = [(generator, run, params, paths) for run in runs]
        summaries = dict(zip(runs, map_in_processes(train_run_alone, calls, processes)))
    else:
        with process_group() as ranks:
            summaries = main_rank_results({run: train_run(generator, run, params, paths, ranks) for run in runs})
            if not ranks.is_main:
                return rank_done(run_name("train_generator", generator), ranks)
    write_json(paths.curves.with_suffix(".json"), runs_summary(summaries))
    shutil.rmtree(work_folder(paths.out))
    first = next(iter(summaries.values()))
    rates = ", ".join(f"{run} {summary['steps_per_second']:.2f}" for run, summary in summaries.items())
    at_once = f", {processes} at once" if processes > 1 else ""
    return (
        f"{run_name('train_generator', generator)}: {len(runs)} run(s) of {first['steps']} steps on "
        f"{first['train_images']} images (steps/s: {rates}{at_once})"
    )
