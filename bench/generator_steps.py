"""How a trained generator's readings move with training steps: one run, read at each milestone as the fid stage reads.

Trains the DDPM or GAN of the composed params (conf/ with the given overrides, as `dvc exp run -S` would) on a
repository's imbalanced train split. At each milestone it samples `--per-class` images of every class with
synthesize's sampler for that generator (or with each of `--samplers`) and reads them against the real test images
the way the fid stage does, in the repository's full-data classifier's features: per class the diversity ratio and
whether the class is collapsed, k-NN precision and recall, and the full-data classifier's recall on the generated
images (recognition; chance is 1 / classes). Prints a table; writes metrics/bench/<name>.json and its section of
metrics/bench.json.

    python bench/generator_steps.py --generator ddpm --repo ../demo-clone --milestones 1000 2000 3000 4000 \
        -S 'experiment.classifiers=[cnn]' -S 'experiment.distilled=[]' --samplers guidance_scale=1 guidance_scale=2

The repository needs data/cifar10, data/splits.npz and models/classifiers/<classifier>-full/seed<seed> (a demo
run has them). Training seconds exclude the readings.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from record import machine_info, save_bench
from synthaug.core.devices import resolve_device
from synthaug.core.param_rules import validate_all
from synthaug.core.seeding import derive_seed, seed_everything
from synthaug.core.variants import TRAINED_GENERATORS
from synthaug.data.storage import load_image_set, load_index_arrays
from synthaug.generators.training import LoopSettings, build_trainer, train_generator_loop
from synthaug.metrics.classification import classification_report
from synthaug.metrics.features import classifier_features
from synthaug.metrics.generated import generation_scores, judge_confusion, matched_real_indices, usability
from synthaug.models.checkpoint import load_classifier
from synthaug.tools.compose import compose_params


def read_samples(images, labels, test, judge, input_format, fid, minority: list[str]) -> dict:
    """The fid stage's readings of one set of generated images, in the judge's features, and its recognition."""
    classes = len(test.class_names)
    real = test.subset(matched_real_indices(test.labels, labels))
    fake_features, fake_logits = classifier_features(judge, images, input_format, classes, fid.batch_size)
    real_features, _ = classifier_features(judge, real.images, input_format, classes, fid.batch_size)
    scores = generation_scores(
        real_features,
        fake_features,
        real.labels,
        labels,
        test.class_names,
        fid.kid_subsets,
        fid.kid_subset_size,
        fid.precision_recall_k,
        fid.collapse_ratio,
        fid.near_duplicate_distance,
    )
    judged = fake_logits.argmax(1)
    scores = usability(
        scores, judge_confusion(labels, judged, classes), test.class_names, fid.usable_margin, fid.usable_level
    )
    recognized = classification_report(labels, judged, test.class_names)
    recall = {name: entry["recall"] for name, entry in recognized["per_class"].items()}
    return {
        "fid_classifier_features": scores["fid"],
        "precision": scores["precision"],
        "recall": scores["recall"],
        "diversity_ratio": scores["diversity_ratio"],
        "collapsed_classes": scores["collapsed_classes"],
        "recognition": recognized["accuracy"],
        "minority_recognized_above_chance": sum(recall[c] > 1 / classes for c in minority),
        "minority_usable": sum(scores["per_class"][c]["usable"] for c in minority),
        "per_class": {
            name: {
                "diversity_ratio": entry["diversity_ratio"],
                "recognition": recall[name],
                "recognition_margin": entry["recognition_margin"],
                "usable": entry["usable"],
            }
            for name, entry in scores["per_class"].items()
        },
    }


def sampler_settings(base, text: str):
    """base with the KEY=VALUE[,KEY=VALUE] settings of text, validated as the params are."""
    updates = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in type(base).model_fields:
            raise SystemExit(f"--samplers: {key!r} is not a sampler setting ({', '.join(type(base).model_fields)})")
        updates[key] = yaml.safe_load(value)
    return type(base).model_validate(base.model_dump() | updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", choices=TRAINED_GENERATORS, required=True)
    parser.add_argument("--repo", type=Path, required=True, help="a repository that has run the demo (data, models)")
    parser.add_argument("--milestones", type=int, nargs="+", required=True, help="training steps to read at")
    parser.add_argument("--per-class", type=int, default=100, help="generated images per class at each milestone")
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=[""],
        help="read every milestone with each of these synthesize.<generator> settings, each KEY=VALUE[,KEY=VALUE] "
        "(e.g. guidance_scale=1 'steps=25,guidance_scale=2'); default: the params' own",
    )
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], help="a conf override")
    parser.add_argument("--name", default=None, help="the result's name (default: <generator>_steps)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: metrics/bench/<name>.json)")
    args = parser.parse_args()
    milestones = sorted(set(args.milestones))
    sections = validate_all(compose_params(Path("conf"), args.overrides))
    generator, synthesize, fid = sections["train_generator"], sections["synthesize"], sections["fid"]
    experiment = sections["experiment"]
    trained = getattr(generator, args.generator).model_copy(update={"steps": milestones[-1]})
    generator = generator.model_copy(update={args.generator: trained})

    seed_everything(generator.seed)
    dataset = load_image_set(args.repo / "data/cifar10/train.npz")
    train_set = dataset.subset(load_index_arrays(args.repo / "data/splits.npz")["train"])
    test = load_image_set(args.repo / "data/cifar10/test.npz")
    counts = np.bincount(train_set.labels, minlength=dataset.num_classes)
    minority = [dataset.class_names[c] for c in np.argsort(counts, kind="stable")[: dataset.num_classes // 2]]
    judge_path = args.repo / f"models/classifiers/{experiment.classifiers[0]}-full/seed{experiment.seeds[0]}"
    judge, spec = load_classifier(judge_path)
    device = resolve_device(generator.device, "train_generator.device")
    trainer = build_trainer(args.generator, generator, dataset.images.shape[1], dataset.num_classes, device)
    sampling = getattr(synthesize, args.generator)
    sample_params = sampling.model_copy(update={"device": device.type})
    samplers = {text: sampler_settings(sample_params, text) for text in args.samplers}
    settings = LoopSettings.from_params(generator, args.generator)
    settings = dataclasses.replace(settings, checkpoint_every=milestones[-1] + 1, sample_every=math.gcd(*milestones))
    labels = np.repeat(np.arange(dataset.num_classes), args.per_class)
    seeds = [derive_seed(synthesize.seed, "generator_steps", int(c), i) for i, c in enumerate(labels)]
    rows: list[dict] = []
    reading_seconds = 0.0
    start = time.perf_counter()

    def read(step: int) -> None:
        nonlocal reading_seconds
        if step not in milestones:
            return
        began = time.perf_counter()
        for text, sampler in samplers.items():
            images = trainer.sampler(sampler)(labels, seeds)
            row = {
                "step": step,
                "sampler": sampler.model_dump(),
                "train_seconds": round(began - start - reading_seconds, 1),
            }
            row |= read_samples(images, labels, test, judge, spec.input_format, fid, minority)
            rows.append(row)
            guidance = f"  {text}" if text else ""
            print(
                f"step {step:>6}{guidance}  {row['train_seconds']:>7.0f}s  diversity {row['diversity_ratio']:.2f}  "
                f"collapsed {len(row['collapsed_classes'])}  recall {row['recall']:.3f}  "
                f"recognition {row['recognition']:.3f}  minority above chance "
                f"{row['minority_recognized_above_chance']}/{len(minority)}  usable {row['minority_usable']}",
                flush=True,
            )
        reading_seconds += time.perf_counter() - began

    with tempfile.TemporaryDirectory() as workdir:  # no checkpoint is written: the run is not resumable
        train_generator_loop(trainer, train_set, settings, Path(workdir), "bench", on_samples=read)
    payload = {
        "command": "python bench/generator_steps.py "
        + " ".join(
            [
                f"--generator {args.generator}",
                f"--repo {args.repo}",
                "--milestones",
                *map(str, milestones),
                f"--per-class {args.per_class}",
            ]
            + (["--samplers", *(f"'{text}'" for text in args.samplers)] if args.samplers != [""] else [])
            + [f"-S '{o}'" for o in args.overrides]
        ),
        "machine": machine_info(),
        "generator": args.generator,
        "train_generator": trained.model_dump(),
        "samplers": [sampler.model_dump() for sampler in samplers.values()],
        "train_images": len(train_set),
        "minority": minority,
        "judge": str(judge_path.relative_to(args.repo)),
        "rows": rows,
    }
    save_bench(args.name or f"{args.generator}_steps", payload, args.out)


if __name__ == "__main__":
    main()
