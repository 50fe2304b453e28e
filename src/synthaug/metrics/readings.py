"""One generator run's readings, as the fid stage writes them (metrics/fid/, metrics/detail/fid/) and the report
reads them back: the field names below are the record's keys, so both sides name them once.

Distance keys carry the features they were computed on: none on Inception features, `_classifier_features` on the
classifier-feature stand-in, so a stand-in value is never read as FID.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

INCEPTION_FEATURES = "inception"
CLASSIFIER_FEATURES_SUFFIX = "_classifier_features"
DISTANCE_KEYS = frozenset({"fid", "kid_mean", "kid_std", "precision", "recall"})


def distance_suffix(features: str) -> str:
    """The suffix of a reading's distance keys: none on Inception features, `_classifier_features` on the
    classifier-feature stand-in, so the two are never read as one another."""
    return "" if features == INCEPTION_FEATURES else CLASSIFIER_FEATURES_SUFFIX


@dataclass(frozen=True, kw_only=True)
class ClassReading:
    """One class of one run: KID (no per-class FID: too few images), diversity, and how the judge labels it."""

    kid_mean: float
    kid_std: float
    images: int
    diversity_ratio: float  # mean pairwise feature distance, generated / real
    near_duplicate_fraction: float
    collapsed: bool
    recognition: float  # share of this class's generated images the judge labels as this class
    false_recognition: float  # share of the other classes' generated images it labels as this class
    recognition_margin: float
    recognition_margin_low: float
    recognition_margin_high: float
    recognition_p_value: float
    recognized: bool
    usable: bool  # recognized and not collapsed
    real_classifier_recall_on_generated: float


@dataclass(frozen=True, kw_only=True)
class GeneratorReading:
    """One generator run's evaluation images against the real test images of the same classes."""

    features: str  # "inception", or "classifier:<entry>-seed<k>" (not FID)
    inception_unavailable: str | None  # why Inception was not used, when it was wanted
    inception_sha256: str | None
    images: int
    real_images: int
    image_size: int
    real_image_size: int
    real_images_lossy: bool
    real_image_encodings: dict[str, int]
    real_classifier_accuracy_on_generated: float
    real_classifier_macro_f1_on_generated: float
    fid: float
    kid_mean: float
    kid_std: float
    fid_dims: int
    fid_images: int
    fid_full_rank: bool
    precision: float | None = None  # None when fid.precision_recall_k is 0
    recall: float | None = None
    per_class: dict[str, ClassReading]
    diversity_ratio: float
    near_duplicate_fraction: float
    collapse_ratio: float
    collapsed_classes: list[str]
    judge_confusion: list[list[int]]
    usable_margin: float
    usable_level: float
    unusable_classes: list[str]

    @property
    def suffix(self) -> str:
        return distance_suffix(self.features)

    def record(self) -> dict[str, Any]:
        """The JSON record: field names as keys, distance keys suffixed by the features, unset precision omitted."""
        record: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ("precision", "recall") and value is None:
                continue
            if field.name == "per_class":
                value = {name: _suffixed(asdict(entry), self.suffix) for name, entry in value.items()}
            record[_key(field.name, self.suffix)] = value
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "fid record") -> GeneratorReading:
        """Read a record back; a missing or unknown key is named (the record is from another version: rerun fid)."""
        suffix = distance_suffix(record["features"])
        values = _unsuffixed(cls, record, suffix, source)
        values["per_class"] = {
            name: ClassReading(**_unsuffixed(ClassReading, entry, suffix, f"{source}: per_class.{name}"))
            for name, entry in record["per_class"].items()
        }
        return cls(**values)


def _key(name: str, suffix: str) -> str:
    return f"{name}{suffix}" if name in DISTANCE_KEYS else name


def _suffixed(values: dict[str, Any], suffix: str) -> dict[str, Any]:
    return {_key(name, suffix): value for name, value in values.items()}


def _unsuffixed(kind: type, record: dict[str, Any], suffix: str, source: str) -> dict[str, Any]:
    optional = {f.name for f in fields(kind) if f.default is None}
    keys = {_key(f.name, suffix): f.name for f in fields(kind)}
    unknown = sorted(set(record) - set(keys))
    missing = sorted(key for key, name in keys.items() if key not in record and name not in optional)
    if unknown or missing:
        raise ValueError(
            f"{source}: not a {kind.__name__} record (missing {missing or 'none'}, unknown {unknown or 'none'}): "
            "rerun the fid stage"
        )
    return {name: record[key] for key, name in keys.items() if key in record}
