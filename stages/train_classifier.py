"""DVC stage `train_classifier`: one (classifier, variant) entry of the experiment matrix, trained and evaluated
on the test split once per experiment.seeds entry, in one process (start-up is paid once, not once per seed)."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

from synthaug.cli import run_stage
from synthaug.data.imbalance import SYNTHETIC_ONLY_PREFIX, load_variant_sets
from synthaug.data.storage import ImageSet, concat_image_sets, load_image_set
from synthaug.distributed import Ranks, close_ranks, init_ranks
from synthaug.io import fingerprint, work_folder, write_json, write_text
from synthaug.models.classifiers import count_parameters
from synthaug.params import ExperimentParams, TrainParams, load_section
from synthaug.seeding import seed_everything
from synthaug.synth.filter import filter_synthetic
from synthaug.synth.shards import load_synthetic
from synthaug.tracking import main_rank_run, run_name
from synthaug.train.checkpoint import save_classifier
from synthaug.train.classifier import history_csv, prepare_training, train_classifier
from synthaug.train.evaluation import evaluate_classifier, write_evaluation


def seed_file(folder: Path, seed: int, suffix: str = "") -> Path:
    return folder / f"seed{seed}{suffix}"


def train_seed(args: argparse.Namespace, params: TrainParams, seed: int, test: ImageSet, ranks: Ranks) -> str:
    """Train, save and evaluate the entry for one seed; returns its summary line."""
    seed_everything(seed)
    train_set, val_set = load_variant_sets(args.data, args.splits, args.variant, seed)
    synthetic_report: dict = {}
    if args.synthetic is not None:
        synthetic = load_synthetic(args.synthetic, train_set.class_names)
        if args.variant.startswith(SYNTHETIC_ONLY_PREFIX):  # CAS measures the generator as it is: nothing filtered
            synthetic_report = {"synthetic_images": len(synthetic)}
        else:
            judge = None if args.filter_model is None else seed_file(args.filter_model, seed)
            synthetic, synthetic_report = filter_synthetic(
                synthetic, judge, params.synthetic_filter, params.eval_batch_size
            )
        train_set = concat_image_sets(train_set, synthetic)
    setup = prepare_training(args.classifier, args.variant, params, train_set)
    entry = f"{args.classifier}-{args.variant}"
    name = run_name("train_classifier", entry, seed)
    tags = {"classifier": args.classifier, "variant": args.variant, "seed": str(seed)}
    with main_rank_run(ranks.is_main, name, {"train": params.model_dump()}, tags) as tracker:
        tracker.log_metrics({"train_images": len(train_set), "parameters": count_parameters(setup.model)})
        # A killed run resumes from its last finished epoch, if nothing that decides the result changed.
        work = work_folder(args.out) / f"seed{seed}"
        digest = fingerprint(
            {
                "train": params.model_dump(),
                "classifier": args.classifier,
                "variant": args.variant,
                "seed": seed,
                "images": hashlib.sha256(train_set.images).hexdigest(),
                "labels": hashlib.sha256(train_set.labels).hexdigest(),
            }
        )
        start = time.perf_counter()
        result = train_classifier(
            setup.model,
            train_set,
            val_set,
            params,
            seed=seed,
            on_epoch=lambda record: tracker.log_metrics(record.to_dict(), step=record.epoch),
            checkpoint=work / "last.safetensors",
            fingerprint=digest,
            ranks=ranks,
            loss_spec=setup.loss_spec,
        )
        seconds = time.perf_counter() - start
        if not ranks.is_main:
            return f"{name}: rank {ranks.rank} of {ranks.world_size} done"
        save_classifier(seed_file(args.out, seed), setup.spec, result.best_state)
        write_text(seed_file(args.curves, seed, ".csv"), history_csv(result.history))
        write_json(
            seed_file(args.history, seed, ".json"),
            {
                "best_epoch": result.best_epoch,
                "best_val_macro_f1": result.best_val_macro_f1,
                "train_images": len(train_set),
                "parameters": count_parameters(setup.model),
                "seconds": round(
                    seconds, 2
                ),  # this run's training loop (epochs finished before a resume are not counted)
                "device": setup.device.type,
                **synthetic_report,
            },
        )
        # The test split, with the best epoch's weights.
        setup.model.load_state_dict(result.best_state)
        evaluation = evaluate_classifier(setup.model, setup.spec.image_size, test, params.eval_batch_size)
        write_evaluation(
            evaluation,
            test,
            name,
            seed_file(args.eval, seed, ".json"),
            seed_file(args.predictions, seed, ".csv"),
            seed_file(args.confusion, seed),
        )
        report = evaluation.report
        tracker.log_metrics(
            {
                "best_val_macro_f1": result.best_val_macro_f1,
                "best_epoch": result.best_epoch,
                "test_accuracy": report["accuracy"],
                "test_macro_f1": report["macro_f1"],
            }
        )
        tracker.log_metrics({f"test_recall.{c}": v["recall"] for c, v in report["per_class"].items()})
        tracker.log_artifact(seed_file(args.confusion, seed, ".png"))
    return (
        f"{name}: best val macro-F1 {result.best_val_macro_f1:.4f} at epoch {result.best_epoch} "
        f"({len(train_set)} images); test accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"
    )


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classifier", required=True, help="experiment.classifiers entry: vit, cnn or timm")
    parser.add_argument(
        "--variant", required=True, help="baseline, oversampled, full, a loss variant or synthetic_<generator>"
    )
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument(
        "--out", type=Path, required=True, help="checkpoint folder: seed<k>/ (model.safetensors, spec.json)"
    )
    parser.add_argument("--history", type=Path, required=True, help="training summaries: seed<k>.json")
    parser.add_argument("--curves", type=Path, required=True, help="per-epoch curves: seed<k>.csv")
    parser.add_argument("--eval", type=Path, required=True, help="test-split classification reports: seed<k>.json")
    parser.add_argument("--predictions", type=Path, required=True, help="test predictions: seed<k>.csv")
    parser.add_argument(
        "--confusion", type=Path, required=True, help="confusion matrices: seed<k>.json and seed<k>.png"
    )
    parser.add_argument("--synthetic", type=Path, help="synthesize output to add to the real images")
    parser.add_argument(
        "--filter-model", type=Path, help="the judge entry's checkpoint folder, for train.synthetic_filter"
    )
    args = parser.parse_args()
    params = load_section("train", TrainParams)
    seeds = load_section("experiment", ExperimentParams).seeds
    # Under torchrun / accelerate launch every rank trains its share; rank 0 alone logs and writes.
    ranks = init_ranks()
    test = load_image_set(args.data / "test.npz")
    lines = [train_seed(args, params, seed, test, ranks) for seed in seeds]
    if ranks.is_main:  # every seed is done: nothing left to resume
        shutil.rmtree(work_folder(args.out), ignore_errors=True)
    close_ranks(ranks)
    return "; ".join(lines)


if __name__ == "__main__":
    run_stage("train_classifier", main)
