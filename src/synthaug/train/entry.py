"""One entry of the experiment matrix, a (classifier, variant) pair: trained and tested once per seed.

The train stages run this: `train_classifier` for the real-data variants, `train_synthetic` for the variants that
add a generator's images to the real ones (synthetic_<g>), train on them alone (synthetic_only_<g>, CAS) or on
as many real images (real_equal_<g>, CAS's equal-size reference), and `train_distilled` for the variant that
learns from a trained teacher entry's soft targets (distilled).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from synthaug.core.devices import resolve_device
from synthaug.core.distributed import Ranks, process_group, rank_done
from synthaug.core.errors import MissingInput
from synthaug.core.generator_runs import run_folder
from synthaug.core.io import file_sha256, fingerprint, work_folder, write_metrics, write_text
from synthaug.core.param_rules import load_section
from synthaug.core.params import DistillParams, ExperimentParams, TrainParams
from synthaug.core.seeding import seed_everything
from synthaug.core.tracking import main_rank_run, prepare_store, run_name
from synthaug.core.variants import CLASSIFIERS, GENERATORS
from synthaug.core.workers import jobs_at_once, map_in_processes
from synthaug.data.imbalance import class_groups, minority_classes, variant_sets
from synthaug.data.mixed import TrainingImages, concat_image_sets
from synthaug.data.storage import ImageSet, load_image_set, load_index_arrays
from synthaug.models.checkpoint import WEIGHTS_FILE, load_classifier, save_classifier
from synthaug.models.classifiers import count_parameters
from synthaug.synthetic.shards import load_synthetic
from synthaug.train.classifier import TrainingSetup, TrainResult, history_csv, prepare_training, train_classifier
from synthaug.train.evaluation import HEADLINE_SCORES, TestClasses, evaluate_classifier, write_evaluation
from synthaug.train.filter import filter_synthetic
from synthaug.train.losses import Teacher


@dataclass(frozen=True)
class EntryOutputs:
    """The entry's output folders (dvc.yaml names them); each holds one file or folder per seed."""

    model: Path  # seed<k>/: model.safetensors, spec.json
    summary: Path  # seed<k>.json: training seconds (DVC metrics)
    summary_detail: Path  # seed<k>.json: best epoch, images, device, what the synthetic filter kept
    curves: Path  # seed<k>.csv: per-epoch validation curve (DVC plots)
    scores: Path  # seed<k>.json: test accuracy, macro-F1, minority recall, ECE (DVC metrics)
    scores_detail: Path  # seed<k>.json: test precision / recall / F1 per class
    predictions: Path  # seed<k>.csv: test predictions (DVC's confusion plot)
    confusion: Path  # seed<k>.json and seed<k>.png: confusion matrices

    def seed_file(self, folder: Path, seed: int, suffix: str = "") -> Path:
        return folder / f"seed{seed}{suffix}"

    def seed_pair(self, headline: Path, detail: Path, seed: int) -> tuple[Path, Path]:
        """A seed's metrics file and its detail file."""
        return self.seed_file(headline, seed, ".json"), self.seed_file(detail, seed, ".json")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """The train stages' output flags, one per field."""
        for field in fields(EntryOutputs):
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=Path, required=True, help=f"output folder: {OUTPUT_HELP[field.name]}")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> EntryOutputs:
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls)})


OUTPUT_HELP = {
    "model": "seed<k>/ (model.safetensors, spec.json)",
    "summary": "seed<k>.json, training seconds",
    "summary_detail": "seed<k>.json, the rest of the training summary",
    "curves": "seed<k>.csv, per-epoch curves",
    "scores": "seed<k>.json, test accuracy, macro-F1, minority recall, ECE",
    "scores_detail": "seed<k>.json, test scores per class",
    "predictions": "seed<k>.csv, test predictions",
    "confusion": "seed<k>.json and seed<k>.png, confusion matrices",
}


def entry_parser(description: str, classifier_help: str) -> argparse.ArgumentParser:
    """The train stages' common flags: the classifier, the fetched dataset and its splits, the output folders."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--classifier", required=True, choices=CLASSIFIERS, help=classifier_help)
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    EntryOutputs.add_arguments(parser)
    return parser


def added_images_parser(description: str) -> argparse.ArgumentParser:
    """The flags of a stage whose entries add a generator's images to the real ones: entry_parser's, the
    generator, its training images and the judge entry of the synthetic filter."""
    parser = entry_parser(description, "experiment.classifiers entry")
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--synthetic", type=Path, required=True, help="the generator's training images")
    parser.add_argument("--judge", type=Path, required=True, help="the judge entry's checkpoints (synthetic filter)")
    return parser


@dataclass(frozen=True)
class SeedPlan:
    """experiment.seeds, and how many of them train at once on the CPU (train.seed_processes)."""

    seeds: list[int]
    at_once: int = 1


def entry_params() -> tuple[TrainParams, SeedPlan]:
    """What every train stage reads: the train section and experiment.seeds."""
    params = load_section("train", TrainParams)
    return params, SeedPlan(load_section("experiment", ExperimentParams).seeds, params.seed_processes)


@dataclass(frozen=True)
class AddedImages:
    """Generated images an entry trains on: beside the real set (synthetic_<g>) or alone (synthetic_only_<g>); or,
    with count_only, whose per-class counts a real set of the same size matches (real_equal_<g>)."""

    folder: Path  # a synthesize output: one folder per generator run (generator_runs.run_folder picks the seed's)
    alone: bool
    judge: Path | None = None  # the judge entry's checkpoint folder, for train.synthetic_filter (not when alone)
    count_only: bool = False


@dataclass(frozen=True)
class EntrySets:
    """What one seed of an entry trains and selects its epoch on."""

    train: TrainingImages  # the real images of the variant, and the generated ones it adds (sizes may differ)
    val: ImageSet  # the balanced real validation split
    real_labels: np.ndarray  # the real training images' labels: a loss-side fix takes its class statistics from them
    report: dict  # what the synthetic filter did, the generator run used


@dataclass(frozen=True)
class Entry:
    """One (classifier, variant) entry of the experiment matrix: what every seed of it shares."""

    stage: str  # the train stage that runs it: its MLflow runs are named after it
    classifier: str
    variant: str
    data: Path  # the fetched dataset
    splits: Path  # the imbalance stage's indices
    outputs: EntryOutputs
    added: AddedImages | None = None  # generated images it trains on, beside the real ones or instead of them
    teacher: Path | None = None  # the teacher entry's checkpoints, seed<k>/ each (the distilled variant)

    @classmethod
    def from_arguments(
        cls,
        stage: str,
        args: argparse.Namespace,
        variant: str,
        added: AddedImages | None = None,
        teacher: Path | None = None,
    ) -> Entry:
        """The entry a train stage's parsed flags (entry_parser's) name."""
        outputs = EntryOutputs.from_arguments(args)
        return cls(stage, args.classifier, variant, args.data, args.splits, outputs, added, teacher)


def training_set(
    dataset: ImageSet,
    splits: dict[str, np.ndarray],
    variant: str,
    seed: int,
    added: AddedImages | None,
    params: TrainParams,
) -> EntrySets:
    """The training and validation sets of one seed."""
    if added is None:
        train_set, val_set = variant_sets(dataset, splits, variant, seed)
        return EntrySets(train_set, val_set, train_set.labels, {})
    run = run_folder(added.folder, seed)
    synthetic = load_synthetic(run, dataset.class_names)
    if added.count_only:
        per_class = np.bincount(synthetic.labels, minlength=dataset.num_classes)
        train_set, val_set = variant_sets(dataset, splits, variant, seed, per_class)
        report = {"matched_synthetic_images": len(synthetic), "generator_run": run.name}
        return EntrySets(train_set, val_set, train_set.labels, report)
    train_set, val_set = variant_sets(dataset, splits, variant, seed)
    if added.alone:  # CAS measures the generator as it is: nothing filtered (the variant has no real image)
        report = {"synthetic_images": len(synthetic)}
    else:
        judge = None if added.judge is None else added.judge / f"seed{seed}"
        synthetic, report = filter_synthetic(synthetic, judge, params.synthetic_filter, params.eval_batch_size)
    combined = concat_image_sets(train_set, synthetic)
    return EntrySets(combined, val_set, train_set.labels, {**report, "generator_run": run.name})


def prepare_entry(classifier: str, variant: str, params: TrainParams, sets: EntrySets) -> TrainingSetup:
    """The classifier and loss of one seed. A loss fix takes its class statistics from the real images: composed
    with a generator's images that balance the set, it still corrects the real prior, which is what the classifier
    learns on real images when it can tell the generated ones apart (on the balanced set it would do nothing)."""
    return prepare_training(classifier, variant, params, sets.train, sets.real_labels)


def with_teacher(setup: TrainingSetup, folder: Path, params: DistillParams) -> tuple[TrainingSetup, str]:
    """The setup learning from the teacher checkpoint in `folder` (frozen, on the student's device), and the
    checkpoint's weights digest (a resumed run must have had the same teacher)."""
    if not (folder / WEIGHTS_FILE).is_file():
        raise MissingInput(
            f"{folder}: the teacher of train.distill ({params.teacher_classifier}-{params.teacher}) is missing; "
            "train it first (it must be in experiment.classifiers and experiment.variants)"
        )
    model, spec = load_classifier(folder)
    if spec.num_classes != setup.spec.num_classes:
        raise ValueError(f"{folder}: the teacher has {spec.num_classes} classes, the student {setup.spec.num_classes}")
    model = model.to(setup.device).eval().requires_grad_(False)
    teacher = Teacher(model, spec.input_format, params.temperature, params.alpha)
    loss_spec = dataclasses.replace(setup.loss_spec, teacher=teacher)
    return dataclasses.replace(setup, loss_spec=loss_spec), file_sha256(folder / WEIGHTS_FILE)


def test_seed(
    setup: TrainingSetup,
    best_state: dict,
    test: ImageSet,
    classes: TestClasses,
    params: TrainParams,
    outputs: EntryOutputs,
    seed: int,
    title: str,
) -> dict:
    """Test the best epoch's weights on the test split and write the scores, predictions and confusion matrices."""
    setup.model.load_state_dict(best_state)
    evaluation = evaluate_classifier(setup.model, setup.spec.input_format, test, params.eval_batch_size, classes)
    write_evaluation(
        evaluation,
        test,
        title,
        outputs.seed_file(outputs.predictions, seed, ".csv"),
        outputs.seed_file(outputs.confusion, seed),
    )
    write_metrics(*outputs.seed_pair(outputs.scores, outputs.scores_detail, seed), evaluation.report, HEADLINE_SCORES)
    return evaluation.report


# The test scores every seed's MLflow run carries as test_<name>.
TEST_SCORES = (*HEADLINE_SCORES, "weighted_f1")


def seed_summary(result: TrainResult, train_images: int, setup: TrainingSetup, seconds: float) -> dict:
    """What one seed's training did: its best epoch and score, how long it ran and on what."""
    return {
        "best_epoch": result.best_epoch,
        "best_val_macro_f1": result.best_val_macro_f1,
        "epochs_trained": len(result.history),
        "stopped_early": result.stopped_early,
        "train_images": train_images,
        "parameters": count_parameters(setup.model),
        "seconds": round(seconds, 2),  # this run's loop (epochs done before a resume are not counted)
        "device": setup.device.type,
        "torch_threads": torch.get_num_threads(),  # one per seed when seeds train at once on 2 cores
    }


def train_seed(
    entry: Entry, seed: int, sets: EntrySets, test: ImageSet, classes: TestClasses, params: TrainParams, ranks: Ranks
) -> str:
    """Train, save and test one seed of the entry (with its teacher, if it has one); its summary line."""
    classifier, variant, outputs, teacher = entry.classifier, entry.variant, entry.outputs, entry.teacher
    train_set, val_set, synthetic_report = sets.train, sets.val, sets.report
    setup = prepare_entry(classifier, variant, params, sets)
    teacher_digest = {}
    if teacher is not None:
        setup, weights = with_teacher(setup, teacher / f"seed{seed}", params.distill)
        teacher_digest = {"teacher_weights": weights}
    name = run_name(entry.stage, f"{classifier}-{variant}", seed)
    tags = {"classifier": classifier, "variant": variant, "seed": str(seed)}
    with main_rank_run(ranks.is_main, name, {"train": params.model_dump()}, tags) as tracker:
        tracker.log_metrics({"train_images": len(train_set), "parameters": count_parameters(setup.model)})
        # A killed run resumes from its last finished epoch, if nothing that decides the result changed.
        digest = fingerprint(
            {"train": params.model_dump(), "classifier": classifier, "variant": variant, "seed": seed}
            | train_set.digest()
            | teacher_digest
        )
        start = time.perf_counter()
        result = train_classifier(
            setup,
            train_set,
            val_set,
            params,
            seed=seed,
            on_epoch=lambda record: tracker.log_metrics(record.to_dict(), step=record.epoch),
            checkpoint=work_folder(outputs.model) / f"seed{seed}" / "last.safetensors",
            fingerprint=digest,
            ranks=ranks,
        )
        seconds = time.perf_counter() - start
        if not ranks.is_main:
            return rank_done(name, ranks)
        save_classifier(outputs.seed_file(outputs.model, seed), setup.spec, result.best_state)
        write_text(outputs.seed_file(outputs.curves, seed, ".csv"), history_csv(result.history))
        summary = {
            **seed_summary(result, len(train_set), setup, seconds),
            **({"teacher": teacher.name} if teacher is not None else {}),
            **synthetic_report,
        }
        write_metrics(
            *outputs.seed_pair(outputs.summary, outputs.summary_detail, seed),
            summary,
            keys=("seconds", "best_val_macro_f1"),
        )
        report = test_seed(setup, result.best_state, test, classes, params, outputs, seed, name)
        tracker.log_metrics(
            {"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch}
            | {f"test_{key}": report[key] for key in TEST_SCORES if key in report}
        )
        tracker.log_metrics({f"test_recall.{c}": v["recall"] for c, v in report["per_class"].items()})
        tracker.log_artifact(outputs.seed_file(outputs.confusion, seed, ".png"))
    return (
        f"{name}: best val macro-F1 {result.best_val_macro_f1:.4f} at epoch {result.best_epoch} of "
        f"{len(result.history)}{' (stopped early)' if result.stopped_early else ''} ({len(train_set)} images); "
        f"test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"
    )


def entry_data(entry: Entry, params: TrainParams) -> tuple[ImageSet, ImageSet, dict[str, np.ndarray], TestClasses]:
    """(test split, fetched train split, the imbalance stage's indices, how the test scores group the classes)."""
    test = load_image_set(entry.data / "test.npz")
    dataset, split_indices = load_image_set(entry.data / "train.npz"), load_index_arrays(entry.splits)
    counts = np.bincount(dataset.labels[split_indices["train"]], minlength=dataset.num_classes).tolist()
    per_class = dict(zip(dataset.class_names, counts))
    groups = class_groups(per_class, params.class_groups.many_from, params.class_groups.few_upto)
    return test, dataset, split_indices, TestClasses(minority_classes(per_class), groups)


def train_with_added_images(stage: str, args: argparse.Namespace, variant: str) -> str:
    """Train `variant`, the real imbalanced set plus the images of args.synthetic (filtered by args.judge as
    synthetic_<g>'s are), once per seed (an added_images_parser stage)."""
    params, seeds = entry_params()
    added = AddedImages(args.synthetic, alone=False, judge=args.judge)
    return train_entry(Entry.from_arguments(stage, args, variant, added), params, seeds)


def train_seed_alone(entry: Entry, seed: int, params: TrainParams) -> str:
    """One seed in a worker process of its own (one rank of one): its summary line."""
    test, dataset, split_indices, classes = entry_data(entry, params)
    seed_everything(seed)
    sets = training_set(dataset, split_indices, entry.variant, seed, entry.added, params)
    return train_seed(entry, seed, sets, test, classes, params, Ranks())


def train_entry(entry: Entry, params: TrainParams, plan: SeedPlan) -> str:
    """Train and test the entry once per seed, each seed learning from the same seed of the entry's teacher, if it
    has one: in this process one after another (start-up is paid once, not once per seed), or on the CPU
    `plan.at_once` seeds at a time in worker processes that share the cores.

    Under torchrun / accelerate launch every rank trains its share; rank 0 alone logs and writes.
    """
    at_once = jobs_at_once(plan.at_once, len(plan.seeds), resolve_device(params.device, "train.device").type)
    if at_once > 1:
        prepare_store()
        calls = [(entry, seed, params) for seed in plan.seeds]
        lines = map_in_processes(train_seed_alone, calls, at_once)
        shutil.rmtree(work_folder(entry.outputs.model), ignore_errors=True)  # every seed is done
        return "; ".join(lines) + f" ({at_once} seeds at once)"
    test, dataset, split_indices, classes = entry_data(entry, params)
    lines = []
    with process_group() as ranks:
        for seed in plan.seeds:
            seed_everything(seed)
            sets = training_set(dataset, split_indices, entry.variant, seed, entry.added, params)
            lines.append(train_seed(entry, seed, sets, test, classes, params, ranks))
        if ranks.is_main:  # every seed is done: nothing left to resume
            shutil.rmtree(work_folder(entry.outputs.model), ignore_errors=True)
    return "; ".join(lines)
