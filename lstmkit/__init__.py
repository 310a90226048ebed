"""lstmkit: reproducible, explainable LSTM forecasting over papermill notebooks and a Jupyter Book report."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up lines out of notebooks

from lstmkit.config import Config
from lstmkit.core.errors import ConfigError, LstmkitError
from lstmkit.core.version import __version__
from lstmkit.runs.folder import RunFolder, open_run, start_run

__all__ = ["__version__", "Config", "ConfigError", "LstmkitError", "RunFolder", "load_bundle", "load_config", "open_run", "start_run"]


def __getattr__(name: str):
    """Lazy attributes that load TensorFlow when first used: `lstmkit.load_config` (a profile checked by every layer,
    see lstmkit.stages.checks.load_checked) and `lstmkit.load_bundle` (the bundle runtime)."""
    if name == "load_config":
        from lstmkit.stages.checks import load_checked  # checks the architectures' own settings: TensorFlow loads

        return load_checked
    if name == "load_bundle":
        from lstmkit.bundle.runtime import load_bundle  # TensorFlow loads with it: not at `import lstmkit`

        return load_bundle
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
