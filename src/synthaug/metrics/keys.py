"""Names in the records that one stage writes and another reads, defined once for both."""

from __future__ import annotations

CLASSIFIER_FEATURES_SUFFIX = "_classifier_features"
INCEPTION_FEATURES = "inception"


def distance_suffix(features: str) -> str:
    """The suffix of a generator reading's distance keys (fid, kid_mean, precision, ...): none on Inception features,
    `_classifier_features` on the classifier-feature stand-in, so the two are never read as one another."""
    return "" if features == INCEPTION_FEATURES else CLASSIFIER_FEATURES_SUFFIX
