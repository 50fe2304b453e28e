"""DVC stage `fid`: how close one generator's images are to the real test set (FID/KID, precision/recall, CAS).

Features: pytorch-fid's InceptionV3 when its weights are available, else the full-data classifier's
penultimate features, reported as `fid_classifier_features` (a different metric, never mixed with FID).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from synthaug.cli import run_stage
from synthaug.data.storage import load_image_set
from synthaug.devices import resolve_device
from synthaug.io import write_json
from synthaug.metrics.classification import classification_report
from synthaug.metrics.fid import (
    FeatureWeightsMissing,
    classifier_features,
    generation_scores,
    inception_features,
    inception_weights_path,
    labelled,
    load_fid_inception,
    matched_real_indices,
)
from synthaug.params import GENERATORS, FidParams, load_section
from synthaug.synth.shards import load_synthetic
from synthaug.tracking import run_name, stage_run
from synthaug.train.checkpoint import load_classifier

log = logging.getLogger("synthaug.fid")


def main() -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="experiment.generators entry")
    parser.add_argument("--eval-set", type=Path, required=True, help="the generator's evaluation set from synthesize")
    parser.add_argument("--data", type=Path, required=True, help="fetched dataset folder (its test split is the reference)")
    parser.add_argument("--feature-model", type=Path, required=True, help="classifier trained on the full real data")
    parser.add_argument("--out", type=Path, required=True, help="metrics file (.json)")
    args = parser.parse_args()
    params = load_section("fid", FidParams)

    test = load_image_set(args.data / "test.npz")
    fake = load_synthetic(args.eval_set, test.class_names)
    real = test.subset(matched_real_indices(test.labels, fake.labels))
    device = resolve_device(params.device, "fid.device")
    classifier, spec = load_classifier(args.feature_model)
    classifier = classifier.to(device)
    name = run_name("fid", args.generator)
    with stage_run(name, {"fid": params.model_dump()}, {"generator": args.generator}) as tracker:
        start = time.perf_counter()
        # The classifier's logits on the generated images give CAS whichever features the distances use.
        fake_features, fake_logits = classifier_features(classifier, fake.images, spec.image_size, test.num_classes, params.batch_size)
        inception = None
        if params.feature_extractor != "classifier":
            try:
                inception = load_fid_inception(inception_weights_path(params.inception_weights))
            except FeatureWeightsMissing:
                if params.feature_extractor == "inception":
                    raise
                log.warning("Inception weights not found (fid.inception_weights, torch hub cache): reporting "
                            "fid_classifier_features from %s instead; it is not comparable to Inception FID", args.feature_model)
        if inception is None:
            suffix = "_classifier_features"
            real_features, _ = classifier_features(classifier, real.images, spec.image_size, test.num_classes, params.batch_size)
        else:
            suffix = ""
            real_features = inception_features(inception, real.images, params.batch_size, device)
            fake_features = inception_features(inception, fake.images, params.batch_size, device)
        scores = labelled(generation_scores(
            real_features, fake_features, real.labels, fake.labels, test.class_names,
            params.kid_subsets, params.kid_subset_size, params.precision_recall_k,
        ), suffix)
        # Classification accuracy score: a classifier trained on real images, tested on the generated ones.
        cas = classification_report(fake.labels, fake_logits.argmax(1), test.class_names)
        result = {
            "generator": args.generator, "features": "inception" if not suffix else f"classifier:{args.feature_model.name}",
            "images": len(fake), "cas_accuracy": cas["accuracy"], "cas_macro_f1": cas["macro_f1"], **scores,
        }
        for class_name, entry in result["per_class"].items():
            entry["cas_recall"] = cas["per_class"][class_name]["recall"]
        write_json(args.out, result)
        tracker.log_metrics({k: v for k, v in result.items() if isinstance(v, (int, float)) and np.isfinite(v)})
        tracker.log_artifact(args.out)
        seconds = time.perf_counter() - start
    fid_key = f"fid{suffix}"
    return (f"{name}: {fid_key} {result[fid_key]:.3f}, kid {result[f'kid_mean{suffix}']:.4f}, "
            f"CAS accuracy {result['cas_accuracy']:.4f} on {len(fake)} images ({seconds:.1f}s)")


if __name__ == "__main__":
    run_stage("fid", main)
