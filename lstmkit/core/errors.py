"""Every error lstmkit raises on purpose, under one root: `LstmkitError`.

An `LstmkitError` means "the input cannot be used as given" (a file, a configuration, an API call, a request) or "an
operation could not complete" (a stage that failed, a search whose every trial failed, a locked run folder), and its
message says what is wrong and where, for the person who can fix it: the command line prints it (`error: ...`) and
exits with its `exit_code` (2 for input, 1 for a failed operation, 3 for a locked run folder), the service answers it
with its `status` (a 4xx, or 503 while stopping). Any other exception is a bug:
the command line prints its traceback and exits 1, the service answers 500 naming no internals.

Subclasses keep the built-in base their callers expect (`ValueError` for bad input, `RuntimeError` for an operation
that failed, `FileNotFoundError` for a missing artifact), so `except ValueError` still catches a `ConfigError`.
"""

from __future__ import annotations


class LstmkitError(Exception):
    """Root of every error lstmkit raises on purpose; `status` is the HTTP status the service answers it with,
    `exit_code` the command line's exit status (2: the input cannot be used; 1: an operation failed; 3: locked)."""

    status: int = 422
    exit_code: int = 2


# ---------------------------------------------------------------- input: configuration, data, files


class ConfigError(LstmkitError, ValueError):
    """A configuration file or override that cannot be used as given."""


class DataError(LstmkitError, ValueError):
    """Input data that cannot be used, with the file, column or row at fault."""


class DatasetError(DataError):
    """A named dataset that cannot be resolved, downloaded or verified, with what to do about it."""


class LabelsError(DataError):
    """An anomaly labels file that cannot be read or does not fit the series."""


class ArtifactError(LstmkitError, ValueError):
    """A run-folder artifact that exists but cannot be read (empty, not valid JSON, cut short)."""


class ArtifactMissing(LstmkitError, FileNotFoundError):
    """An artifact an earlier stage should have written is missing: the message names the stage to run."""


# ---------------------------------------------------------------- models, tuning, runs


class ForecasterError(LstmkitError, ValueError):
    """A forecaster used wrongly: predicting before fitting, windows of the wrong shape, non-finite inputs, ..."""


class TuningError(LstmkitError, RuntimeError):
    """A search that could not produce a best configuration (every trial failed, a worker kept dying, ...)."""

    exit_code = 1


class StageFailed(LstmkitError, RuntimeError):
    """A notebook cell raised: names the notebook, the cell and the error."""

    exit_code = 1


class RunFolderLocked(LstmkitError, RuntimeError):
    """Another process holds the run folder's lock; the message names it (PID, command, start time)."""

    exit_code = 3


class ReportError(LstmkitError, RuntimeError):
    """The report could not be built (a missing stage output, a Sphinx warning in strict mode)."""

    exit_code = 1


class DeploymentError(LstmkitError, RuntimeError):
    """The replay could not run: a service that did not start (with its log's tail) or answered an error."""

    exit_code = 1


# ---------------------------------------------------------------- bundles and the service


class BundleError(LstmkitError, ValueError):
    """A bundle that cannot be used: the message names the file and what is wrong with it."""


class ForecastInputError(LstmkitError, ValueError):
    """A frame or window that cannot be forecast from (columns, time step, gaps, missing values, too few rows)."""


class StorageError(LstmkitError, ValueError):
    """An append (or forecast) the store refuses; `status` is the HTTP status: 409 conflict, 422 invalid."""

    def __init__(self, message: str, status: int = 422):
        """Message naming the series, timestamp and column; `status` 409 or 422."""
        super().__init__(message)
        self.status = status


class RegistryError(LstmkitError, ValueError):
    """A model version that cannot be served (unknown, missing, failing verification) or nothing to roll back to."""

    status = 409


class RetrainError(LstmkitError, RuntimeError):
    """A retrain that cannot be started or run; `status` is the HTTP status the service answers with."""

    status = 422


class RetrainBusy(RetrainError):
    """Another retrain job is running (one at a time)."""

    status = 409


class JobFailed(LstmkitError, RuntimeError):
    """The job cannot run (too little history, missing columns, unusable champion): a clear message, exit code 3."""


class BatcherClosed(LstmkitError, RuntimeError):
    """The batcher was closed (the service is shutting down)."""

    status = 503
