"""The fid stage's record of a generator run: the keys it writes are the ones the report reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthaug.metrics.fid import frechet_distance
from synthaug.metrics.generated import generation_scores, judge_confusion, usability
from synthaug.metrics.readings import ClassReading, GeneratorReading

CLASSES = ("a", "b")


def reading(features: str, precision_recall_k: int = 3) -> GeneratorReading:
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    labels = np.repeat([0, 1], 30)
    scores = usability(
        generation_scores(real, fake, labels, labels, CLASSES, 4, 20, precision_recall_k, 0.5, 0.1),
        judge_confusion(labels, labels, len(CLASSES)),
        CLASSES,
        0.1,
        0.05,
    )
    per_class = {
        name: ClassReading(**entry, real_classifier_recall_on_generated=1.0)
        for name, entry in scores.pop("per_class").items()
    }
    return GeneratorReading(
        features=features,
        inception_unavailable=None,
        inception_sha256=None,
        images=60,
        real_images=60,
        image_size=32,
        real_image_size=32,
        real_images_lossy=False,
        real_image_encodings={},
        real_classifier_accuracy_on_generated=1.0,
        real_classifier_macro_f1_on_generated=1.0,
        per_class=per_class,
        **scores,
    )


def test_distances_on_classifier_features_are_never_written_as_fid():
    record = reading("classifier:cnn-full-seed0").record()
    assert {"fid_classifier_features", "kid_mean_classifier_features", "precision_classifier_features"} <= set(record)
    assert "fid" not in record and "kid_mean" not in record and "recall" not in record
    assert "kid_mean_classifier_features" in record["per_class"]["b"] and "kid_mean" not in record["per_class"]["b"]
    assert not any(key.startswith("fid") for key in record["per_class"]["b"])  # per class: KID only
    assert (record["fid_dims"], record["fid_images"], record["fid_full_rank"]) == (3, 60, True)
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    assert record["fid_classifier_features"] == pytest.approx(frechet_distance(real, fake))
    inception = reading("inception").record()
    assert (
        "fid" in inception and "kid_mean" in inception["per_class"]["a"] and "fid_classifier_features" not in inception
    )


@pytest.mark.parametrize("features", ["inception", "classifier:cnn-full-seed0"])
def test_a_record_reads_back_as_the_reading_it_was_written_from(features):
    written = reading(features)
    back = GeneratorReading.from_record(json.loads(json.dumps(written.record())))
    assert back == written
    assert back.per_class["a"].images == 30 and back.fid == written.fid and back.suffix == written.suffix


def test_precision_and_recall_are_left_out_when_not_measured():
    written = reading("inception", precision_recall_k=0)
    assert written.precision is None and "precision" not in written.record() and "recall" not in written.record()
    assert GeneratorReading.from_record(written.record()).recall is None


def test_a_record_of_other_keys_is_refused_with_the_keys_named():
    record = reading("inception").record()
    record["fid_at_2048"] = record.pop("fid")
    with pytest.raises(
        ValueError,
        match=r"metrics/fid/gan.json: not a GeneratorReading record \(missing \['fid'\], "
        r"unknown \['fid_at_2048'\]\): rerun the fid stage",
    ):
        GeneratorReading.from_record(record, "metrics/fid/gan.json")
    record = reading("inception").record()
    del record["per_class"]["a"]["usable"]
    with pytest.raises(ValueError, match=r"per_class.a: not a ClassReading record \(missing \['usable'\]"):
        GeneratorReading.from_record(record)
