"""The fid stage's readings: how close one generator's images are to the real test set (FID/KID, precision/recall).

Features: pytorch-fid's InceptionV3 at `fid.dims` (fetched through torch.hub when not cached), else the
full-data classifier's penultimate features, reported as `fid_classifier_features` (never mixed with FID).
Also the full-data classifier's accuracy on the generated images; CAS proper (trained on generated images,
tested on real ones) is the synthetic_only_<generator> variant's test accuracy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthaug.core.devices import resolve_device
from synthaug.core.errors import FeatureWeightsMissing, MissingInput
from synthaug.core.generator_runs import run_folders
from synthaug.core.io import file_sha256, read_json, write_metrics
from synthaug.core.params import FidParams
from synthaug.core.tracking import run_name, stage_run
from synthaug.data.pixels import InputFormat
from synthaug.data.storage import ImageSet, load_image_set
from synthaug.metrics.classification import classification_report
from synthaug.metrics.features import (
    classifier_features,
    inception_features,
    inception_weights_path,
    load_fid_inception,
)
from synthaug.metrics.generated import generation_scores, judge_confusion, matched_real_indices, usability
from synthaug.metrics.readings import INCEPTION_FEATURES, ClassReading, GeneratorReading
from synthaug.models.checkpoint import load_classifier
from synthaug.synthetic.shards import load_synthetic

log = logging.getLogger("synthaug.fid")


def inception_or_reason(params: FidParams) -> tuple[Path | None, str | None]:
    """The Inception weights to use, or why there are none (only when feature_extractor is auto)."""
    if params.feature_extractor == "classifier":
        return None, "fid.feature_extractor is classifier"
    try:
        return inception_weights_path(params.inception_weights, params.inception_url), None
    except FeatureWeightsMissing as exc:
        if params.feature_extractor == "inception":
            raise
        log.warning("%s: reporting fid_classifier_features instead; it is not comparable to Inception FID", exc)
        return None, str(exc)


def compared_features(
    params: FidParams,
    classifier: torch.nn.Module,
    input_format: InputFormat,
    real: ImageSet,
    fake: ImageSet,
    feature_model: Path,
    device: torch.device,
):
    """(the full-data classifier's logits on the generated images, real features, generated features, what the
    features are, the Inception weights or None, why not): Inception when its weights can be had, else the
    classifier's penultimate features, named so that they are never read as FID."""
    classes = len(real.class_names)
    fake_features, fake_logits = classifier_features(classifier, fake.images, input_format, classes, params.batch_size)
    weights, unavailable = inception_or_reason(params)
    if weights is None:
        real_features, _ = classifier_features(classifier, real.images, input_format, classes, params.batch_size)
        features = f"classifier:{feature_model.parent.name}-{feature_model.name}"
        return fake_logits, real_features, fake_features, features, None, unavailable
    inception = load_fid_inception(weights, params.dims)
    real_features = inception_features(inception, real.images, params.batch_size, device)
    fake_features = inception_features(inception, fake.images, params.batch_size, device)
    return fake_logits, real_features, fake_features, INCEPTION_FEATURES, weights, unavailable


def read_run(
    params: FidParams,
    eval_set: Path,
    test: ImageSet,
    meta: dict,
    classifier: torch.nn.Module,
    spec,
    feature_model: Path,
    device: torch.device,
) -> GeneratorReading:
    """The readings of one generator run's evaluation images against the real test images of the same classes."""
    fake = load_synthetic(eval_set, test.class_names)
    real = test.subset(matched_real_indices(test.labels, fake.labels))
    fake_logits, real_features, fake_features, features, weights, unavailable = compared_features(
        params, classifier, spec.input_format, real, fake, feature_model, device
    )
    judged = fake_logits.argmax(1)
    scores = usability(
        generation_scores(
            real_features,
            fake_features,
            real.labels,
            fake.labels,
            test.class_names,
            params.kid_subsets,
            params.kid_subset_size,
            params.precision_recall_k,
            params.collapse_ratio,
            params.near_duplicate_distance,
        ),
        judge_confusion(fake.labels, judged, len(test.class_names)),
        test.class_names,
        params.usable_margin,
        params.usable_level,
    )
    # How recognizable the generated images are to a classifier trained on real data (not CAS: see the docstring).
    recognized = classification_report(fake.labels, judged, test.class_names)
    per_class = {
        name: ClassReading(**entry, real_classifier_recall_on_generated=recognized["per_class"][name]["recall"])
        for name, entry in scores.pop("per_class").items()
    }
    return GeneratorReading(
        features=features,
        inception_unavailable=unavailable,
        inception_sha256=None if weights is None else file_sha256(weights),
        images=len(fake),
        real_images=len(real),
        image_size=fake.image_size,
        real_image_size=real.image_size,
        real_images_lossy=meta.get("lossy_images", 0) > 0,
        real_image_encodings=meta.get("encodings", {}),
        real_classifier_accuracy_on_generated=recognized["accuracy"],
        real_classifier_macro_f1_on_generated=recognized["macro_f1"],
        per_class=per_class,
        **scores,
    )


@dataclass(frozen=True)
class FidPaths:
    """The fid stage's inputs and outputs (dvc.yaml names them)."""

    eval_set: Path  # the generator's evaluation sets from synthesize, <run>/ each
    data: Path  # the fetched dataset: its test split is the reference
    feature_model: Path  # the classifier trained on the full real data
    out: Path  # FID and KID, mean over runs (DVC metrics)
    detail: Path  # each run's readings, per class


def read_generator(generator: str, params: FidParams, paths: FidPaths) -> str:
    """Every run's readings of one generator, written and logged; the summary line."""
    test = load_image_set(paths.data / "test.npz")
    meta = read_json(paths.data / "meta.json")
    runs = run_folders(paths.eval_set)
    if not runs:
        raise MissingInput(f"{paths.eval_set}: no generator run folders (seed<k>/ or shared/): rerun synthesize")
    device = resolve_device(params.device, "fid.device")
    classifier, spec = load_classifier(paths.feature_model)
    classifier = classifier.to(device)
    name = run_name("fid", generator)
    readings: dict[str, GeneratorReading] = {}
    with stage_run(name, {"fid": params.model_dump()}, {"generator": generator}) as tracker:
        start = time.perf_counter()
        for run, folder in runs.items():
            readings[run] = read_run(params, folder, test, meta, classifier, spec, paths.feature_model, device)
        first = next(iter(readings.values()))
        results = {run: reading.record() for run, reading in readings.items()}
        headline = (f"fid{first.suffix}", f"kid_mean{first.suffix}")  # what dvc metrics show prints: the run mean
        record = {
            "generator": generator,
            "device": device.type,
            **{key: float(np.mean([r[key] for r in results.values()])) for key in headline},
            "runs": results,
        }
        write_metrics(paths.out, paths.detail, record, keys=headline)
        for run, result in results.items():
            prefix = "" if len(results) == 1 else f"{run}."
            tracker.log_metrics(
                {
                    f"{prefix}{k}": v
                    for k, v in result.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                }
            )
            tracker.log_metrics(
                {
                    f"{prefix}{key}.{class_name}": getattr(entry, key)
                    for class_name, entry in readings[run].per_class.items()
                    for key in ("diversity_ratio", "near_duplicate_fraction", "recognition_margin")
                    if np.isfinite(getattr(entry, key))
                }
            )
        tracker.log_artifact(paths.out)
        tracker.log_artifact(paths.detail)
        seconds = time.perf_counter() - start
    summary = "; ".join(
        f"{run}: fid{r.suffix} {r.fid:.3f}, kid {r.kid_mean:.4f}, diversity {r.diversity_ratio:.2f}, collapsed "
        f"{r.collapsed_classes or 'none'}, not usable {r.unusable_classes or 'none'}"
        for run, r in readings.items()
    )
    rank = "full rank" if first.fid_full_rank else "rank-deficient: not comparable to published FID"
    return f"{name}: {first.fid_dims}-d, {first.fid_images} images per side, {rank}; {summary} ({seconds:.1f}s)"
