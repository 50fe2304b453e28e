"""The errors a user can fix from the message alone; stage entry points print them as one line.

They live here, at the bottom of the import graph, so that catching one never imports the module that
raises it (and never drags that module into every stage's DVC dependencies).
"""

from __future__ import annotations


class ParamsError(ValueError):
    """A params.yaml value is missing, unknown, of the wrong type or out of range."""


class DataError(ValueError):
    """The dataset source is missing, malformed or inconsistent; the message names the file."""


class ImbalanceError(ValueError):
    """The requested imbalance cannot be built from the data (e.g. a class would be empty)."""


class ModelLoadError(RuntimeError):
    """A model could not be loaded from the hub or a local folder; the message says how to fix it."""


class DiskSpaceError(OSError):
    """Not enough free space for an output; raised before any of it is written."""


class TrackingError(RuntimeError):
    """The MLflow store failed and params.yaml asks for strict tracking (tracking.strict: true)."""


class SweepError(ValueError):
    """Nothing to collect: no experiment has the swept key, or `dvc exp show` failed."""


class FeatureWeightsMissing(FileNotFoundError):
    """The Inception weights for FID are neither at the given path, nor in the torch hub cache, nor downloadable."""


USER_ERRORS = (
    ParamsError, DataError, ImbalanceError, ModelLoadError, FileNotFoundError, FloatingPointError, DiskSpaceError,
    TrackingError, SweepError,
)
