"""The errors a user can fix from the message alone; stage entry points print them as one line.

They live here, at the bottom of the import graph, so that catching one never imports the module that
raises it (and never drags that module into every stage's DVC dependencies). Each is a `UserError` and
also the builtin it refines, so callers may catch either.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error the stage runner prints as one line instead of a traceback."""


class ParamsError(UserError, ValueError):
    """A params.yaml value is missing, unknown, of the wrong type or out of range."""


class DataError(UserError, ValueError):
    """The dataset source is missing, malformed or inconsistent; the message names the file."""


class ImbalanceError(UserError, ValueError):
    """The requested imbalance cannot be built from the data (e.g. a class would be empty)."""


class ModelLoadError(UserError, RuntimeError):
    """A model could not be loaded from the hub or a local folder; the message says how to fix it."""


class DiskSpaceError(UserError, OSError):
    """Not enough free space for an output; raised before any of it is written."""


class TrackingError(UserError, RuntimeError):
    """The MLflow store failed and params.yaml asks for strict tracking (tracking.strict: true)."""


class SweepError(UserError, ValueError):
    """Nothing to collect: no experiment has the swept key, or `dvc exp show` failed."""


class FeatureWeightsMissing(UserError, FileNotFoundError):
    """The Inception weights for FID are neither at the given path, nor in the torch hub cache, nor downloadable."""


class MissingInput(UserError, FileNotFoundError):
    """A file a stage reads is missing; the message names it and the stage that makes it."""


class NonFiniteLoss(UserError, FloatingPointError):
    """Training diverged; the message gives the epoch or step and where the last good state is kept."""


class BrokenImages(UserError, ValueError):
    """A generator returned images that are not images (non-finite or constant); the message names the class."""
