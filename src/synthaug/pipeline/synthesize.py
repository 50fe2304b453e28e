"""One generator's images for the minority classes, and a test-distributed set for FID: the synthesize stage.

One set of each per generator run (`experiment.generator_runs`), from that run's weights and with its own sampling
seed, in <out>/<run>/. Both are written as resumable shards: an interrupted run continues from its last complete
shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthaug.core.devices import resolve_device
from synthaug.core.distributed import Ranks, main_rank_results, process_group, rank_done, sum_over_ranks
from synthaug.core.errors import BrokenImages, MissingInput
from synthaug.core.generator_params import SynthesizeParams
from synthaug.core.generator_runs import generator_run_seed, generator_runs
from synthaug.core.io import atomic_path, ensure_free_space, fingerprint, read_json, work_folder, write_json
from synthaug.core.params import ExperimentParams
from synthaug.core.plots import save_png
from synthaug.core.seeding import derive_seed
from synthaug.core.tracking import main_rank_run, run_name
from synthaug.data.storage import ImageSet, load_image_set, load_index_arrays
from synthaug.generators.backends import GENERATOR_FILE, make_backend, prompt_templates, stored_size
from synthaug.synthetic.plan import SynthItem, evaluation_counts, generation_counts, plan_items
from synthaug.synthetic.shards import generate_shards, load_synthetic, preview_grids, publish_synthetic_set


@dataclass(frozen=True)
class Plan:
    """What this run makes: per class, images to top up the imbalanced split and the evaluation set's."""

    train: ImageSet
    train_idx: np.ndarray  # the imbalanced split: conditioning images come from it only
    real_counts: np.ndarray
    counts: np.ndarray
    eval_counts: np.ndarray
    items: list[SynthItem]
    eval_items: list[SynthItem]

    @property
    def images(self) -> int:
        """Both sets' images."""
        return len(self.items) + len(self.eval_items)


def load_sources(data: Path, splits: Path) -> tuple[ImageSet, np.ndarray]:
    """The fetched train split and the imbalanced split's indices into it: what conditions every generated image."""
    return load_image_set(data / "train.npz"), load_index_arrays(splits)["train"]


def make_plan(generator: str, params: SynthesizeParams, data: Path, splits: Path, seed: int) -> Plan:
    """Both sets' items for one generator run: the top-up of every class to the target, and the evaluation set."""
    train, train_idx = load_sources(data, splits)
    test_labels = load_image_set(data / "test.npz").labels
    real_counts = np.bincount(train.labels[train_idx], minlength=train.num_classes)
    counts = generation_counts(real_counts, params.target_count, params.target_ratio)
    eval_counts = evaluation_counts(np.bincount(test_labels, minlength=train.num_classes), params.eval_per_class)
    templates = prompt_templates(generator, params)
    items = plan_items(train_idx, train.labels, train.class_names, counts, templates, seed)
    eval_seed = derive_seed(seed, "eval")
    eval_items = plan_items(train_idx, train.labels, train.class_names, eval_counts, templates, eval_seed)
    return Plan(train, train_idx, real_counts, counts, eval_counts, items, eval_items)


def summary(generator: str, plan: Plan, set_seconds: list[float], generated: int, device: str) -> dict:
    names = plan.train.class_names
    return {
        "generator": generator,
        "synthetic_per_class": dict(zip(names, plan.counts.tolist())),
        "real_per_class": dict(zip(names, plan.real_counts.tolist())),
        "synthetic_total": int(plan.counts.sum()),
        "eval_per_class": dict(zip(names, plan.eval_counts.tolist())),
        # compute spent here (this run; shards finished by an earlier run are not counted again)
        "seconds": round(set_seconds[0], 2),
        "eval_seconds": round(set_seconds[1], 2),
        "generated_this_run": generated,
        "device": device,
    }


@dataclass(frozen=True)
class SynthesizePaths:
    """The synthesize stage's inputs and outputs (dvc.yaml names them); each output holds one folder per run."""

    model: Path  # train_generator's output for the generator
    data: Path  # the fetched dataset
    splits: Path  # the imbalance stage's indices
    out: Path  # <run>/: shards and metadata.csv of the top-up images
    eval_out: Path  # <run>/: the evaluation set (the test split's class distribution)
    previews: Path  # <run>/: preview grids; <previews>.json: the counts


def synthesize_run(
    generator: str, run: str, params: SynthesizeParams, paths: SynthesizePaths, ranks: Ranks
) -> dict | None:
    """Both image sets of one generator run, published, with their previews; its summary (None off the main rank)."""
    seed = generator_run_seed(params.seed, run)
    plan = make_plan(generator, params, paths.data, paths.splits, seed)
    model, out, eval_out, previews = (paths.model / run, paths.out / run, paths.eval_out / run, paths.previews / run)
    if not (model / GENERATOR_FILE).is_file():
        raise MissingInput(f"{model / GENERATOR_FILE}: generator run not found (run the train_generator stage first)")
    # Everything that decides the images: a half-done work folder from other inputs is discarded, not resumed.
    digest = fingerprint(
        {
            "params": params.model_dump(),
            "seed": seed,
            "generator": generator,
            "model": read_json(model / GENERATOR_FILE),
            "data": read_json(paths.data / "meta.json")["sha256"],
            "items": [item.to_dict() for item in plan.items + plan.eval_items],
        }
    )
    # Both sets, written once as shards and once more into the DVC cache.
    image_bytes = 3 * stored_size(generator, params, plan.train.image_size) ** 2
    ensure_free_space(paths.out.parent, 2 * plan.images * image_bytes, f"synthesize@{generator}")
    name = f"{run_name('synthesize', generator)}/{run}"
    # Under torchrun / accelerate launch each rank makes its share of the shards; rank 0 logs and publishes.
    logged = {"synthesize": params.model_dump(), "generator_run_seed": seed}
    with main_rank_run(ranks.is_main, name, logged, {"generator": generator, "generator_run": run}) as tracker:
        train = plan.train
        generate = make_backend(generator, params, model, train.images, train.class_names)
        # Work folders beside the stage outputs (.<g>.partial/<run>), which DVC deletes before a rerun.
        sets = (
            (out, plan.items, work_folder(paths.out) / run),
            (eval_out, plan.eval_items, work_folder(paths.eval_out) / run),
        )
        # Both sets are published only when both are complete.
        generated, set_seconds = 0, []
        for _, planned, work in sets:
            start = time.perf_counter()
            generated += _generate_set(name, planned, params.shard_size, work, digest, generate, ranks)
            set_seconds.append(time.perf_counter() - start)
        seconds = sum(set_seconds)
        generated = int(sum_over_ranks(np.array([generated]), ranks)[0])
        if not ranks.is_main:
            return None
        for target, planned, work in sets:
            publish_synthetic_set(target, planned, params.shard_size, generator, work)
        device, weights = used_device_and_weights(generator, params, generate)
        write_previews(train.subset(plan.train_idx), out, previews, params.preview_per_class)
        tracker.log_metrics(
            {
                "synthetic_total": int(plan.counts.sum()),
                "generated_this_run": generated,
                "generation_seconds": seconds,
                "images_per_second": generated / seconds if generated else 0.0,
            }
        )
        tracker.log_metrics({f"synthetic.{k}": v for k, v in zip(train.class_names, plan.counts.tolist())})
        for preview in sorted(previews.glob("*.png")):
            tracker.log_artifact(preview)
    return {**summary(generator, plan, set_seconds, generated, device), "seed": seed, **weights}


def _generate_set(
    name: str,
    planned: list[SynthItem],
    shard_size: int,
    work: Path,
    digest: str,
    generate: Callable[[list[SynthItem]], np.ndarray],
    ranks: Ranks,
) -> int:
    """Make this rank's share of one image set's shards in `work`; how many images it generated."""
    try:
        return generate_shards(planned, shard_size, work, digest, generate, ranks)
    except BrokenImages as exc:
        raise BrokenImages(f"{name}: {exc}") from exc


def write_previews(real: ImageSet, out: Path, previews: Path, per_class: int) -> None:
    """One PNG per topped-up class: real images above generated ones."""
    grids = preview_grids(real, load_synthetic(out, real.class_names), per_class)
    with atomic_path(previews, directory=True) as folder:
        for class_name, grid in grids.items():
            save_png(grid, folder / f"{class_name}.png")


def used_device_and_weights(generator: str, params: SynthesizeParams, backend: object) -> tuple[str, dict]:
    """The device the images were drawn on and, for SDXL-Turbo, the weights' sources and commits."""
    if generator != "sdxl_turbo":
        return resolve_device(getattr(params, generator).device, f"synthesize.{generator}.device").type, {}
    from synthaug.generators.sdxl_turbo import LoadedPipeline, model_weights

    loaded: LoadedPipeline | None = getattr(backend, "loaded", None)
    if loaded is None:  # every shard was already complete: nothing was drawn in this process
        device = resolve_device(params.sdxl_turbo.device, "synthesize.sdxl_turbo.device").type
        return device, {"weights": {role: w.provenance() for role, w in model_weights(params.sdxl_turbo).items()}}
    return loaded.device.type, {"weights": loaded.provenance()}


def runs_summary(runs: dict[str, dict]) -> dict:
    """<previews>.json: the counts every run shares (the plan depends on the class counts only), the compute of
    all runs together, and each run."""
    first = next(iter(runs.values()))
    shared = {k: v for k, v in first.items() if k not in ("seconds", "eval_seconds", "generated_this_run", "seed")}
    return {
        **shared,
        "seconds": round(sum(r["seconds"] for r in runs.values()), 2),
        "eval_seconds": round(sum(r["eval_seconds"] for r in runs.values()), 2),
        "generated_this_run": sum(r["generated_this_run"] for r in runs.values()),
        "runs": runs,
    }


def synthesize_generator(
    generator: str, params: SynthesizeParams, experiment: ExperimentParams, paths: SynthesizePaths
) -> str:
    """Every run of one generator (experiment.generator_runs), its counts written beside the previews; the summary
    line (each rank under torchrun / accelerate launch makes its share of the shards; rank 0 publishes)."""
    runs = generator_runs(experiment.generator_runs, experiment.seeds)
    with process_group() as ranks:
        summaries = main_rank_results({run: synthesize_run(generator, run, params, paths, ranks) for run in runs})
        if not ranks.is_main:
            return rank_done(run_name("synthesize", generator), ranks)
    for root in (paths.out, paths.eval_out):  # each run's work folder went with its publication
        if work_folder(root).is_dir():
            work_folder(root).rmdir()
    record = runs_summary(summaries)
    write_json(paths.previews.with_suffix(".json"), record)
    generated, seconds = record["generated_this_run"], record["seconds"] + record["eval_seconds"]
    rate = f"{generated / seconds:.2f} images/s" if generated else "all shards were already complete"
    return (
        f"{run_name('synthesize', generator)}: {len(runs)} run(s) of {record['synthetic_total']} synthetic + "
        f"{sum(record['eval_per_class'].values())} evaluation images ({generated} generated now, {rate})"
    )
