"""DVC stage `train_classifier`: one (classifier, variant, seed) entry of the experiment matrix."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

from synthaug.cli import add_entry_arguments, entry_name, entry_tags, run_stage
from synthaug.data.imbalance import SYNTHETIC_ONLY_PREFIX, load_variant_sets
from synthaug.data.storage import concat_image_sets
from synthaug.distributed import close_ranks, init_ranks
from synthaug.io import fingerprint, work_folder, write_json, write_text
from synthaug.models.classifiers import count_parameters
from synthaug.params import TrainParams, load_section
from synthaug.seeding import seed_everything
from synthaug.synth.filter import filter_synthetic
from synthaug.synth.shards import load_synthetic
from synthaug.tracking import main_rank_run, run_name
from synthaug.train.checkpoint import save_classifier
from synthaug.train.classifier import history_csv, prepare_training, train_classifier


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    add_entry_arguments(parser)
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder")
    parser.add_argument("--splits", type=Path, required=True, help="split indices from the imbalance stage")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (model.safetensors, spec.json)")
    parser.add_argument("--history", type=Path, required=True, help="per-epoch curves (.csv) and summary (.json)")
    parser.add_argument("--synthetic", type=Path, help="synthesize output to add to the real images")
    parser.add_argument("--filter-model", type=Path, help="real-data classifier for train.synthetic_filter")
    args = parser.parse_args()
    params = load_section("train", TrainParams)
    # Under torchrun / accelerate launch every rank trains its share; rank 0 alone logs and writes.
    ranks = init_ranks()

    seed_everything(args.seed)
    train_set, val_set = load_variant_sets(args.data, args.splits, args.variant, args.seed)
    synthetic_report: dict = {}
    if args.synthetic is not None:
        synthetic = load_synthetic(args.synthetic, train_set.class_names)
        if args.variant.startswith(SYNTHETIC_ONLY_PREFIX):  # CAS measures the generator as it is: nothing filtered
            synthetic_report = {"synthetic_images": len(synthetic)}
        else:
            synthetic, synthetic_report = filter_synthetic(
                synthetic, args.filter_model, params.synthetic_filter, params.eval_batch_size
            )
        train_set = concat_image_sets(train_set, synthetic)
    setup = prepare_training(args.classifier, args.variant, params, train_set)
    model = setup.model

    name = run_name("train_classifier", entry_name(args), args.seed)
    with main_rank_run(ranks.is_main, name, {"train": params.model_dump()}, entry_tags(args)) as tracker:
        tracker.log_metrics({"train_images": len(train_set), "parameters": count_parameters(model)})
        # A killed run resumes from its last finished epoch, if nothing that decides the result changed.
        work = work_folder(args.out)
        digest = fingerprint({
            "train": params.model_dump(), "classifier": args.classifier, "variant": args.variant, "seed": args.seed,
            "images": hashlib.sha256(train_set.images).hexdigest(), "labels": hashlib.sha256(train_set.labels).hexdigest(),
        })
        start = time.perf_counter()
        result = train_classifier(
            model, train_set, val_set, params, seed=args.seed,
            on_epoch=lambda record: tracker.log_metrics(record.to_dict(), step=record.epoch),
            checkpoint=work / "last.pt", fingerprint=digest, ranks=ranks,
            loss_spec=setup.loss_spec,
        )
        seconds = time.perf_counter() - start
        close_ranks(ranks)
        if not ranks.is_main:
            return f"{name}: rank {ranks.rank} of {ranks.world_size} done"
        save_classifier(args.out, setup.spec, result.best_state)
        shutil.rmtree(work)
        write_text(args.history.with_suffix(".csv"), history_csv(result.history))
        summary = {
            "best_epoch": result.best_epoch,
            "best_val_macro_f1": result.best_val_macro_f1,
            "train_images": len(train_set),
            "parameters": count_parameters(model),
            "seconds": round(seconds, 2),  # this run's training loop (epochs finished before a resume are not counted)
            "device": setup.device.type,
            **synthetic_report,
        }
        write_json(args.history.with_suffix(".json"), summary)
        tracker.log_metrics({"best_val_macro_f1": result.best_val_macro_f1, "best_epoch": result.best_epoch})
    return f"{name}: best val macro-F1 {result.best_val_macro_f1:.4f} at epoch {result.best_epoch} ({len(train_set)} images)"


if __name__ == "__main__":
    run_stage("train_classifier", main)
