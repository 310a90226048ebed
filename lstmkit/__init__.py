"""lstmkit: reproducible, explainable LSTM forecasting over papermill notebooks and a Jupyter Book report."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up lines out of notebooks

from lstmkit.config import Config, ConfigError, load_config
from lstmkit.runfolder import RunFolder, open_run, start_run

__all__ = ["Config", "ConfigError", "RunFolder", "load_bundle", "load_config", "open_run", "start_run"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy attributes: `lstmkit.load_bundle` imports the bundle module (and TensorFlow) only when first used."""
    if name == "load_bundle":
        from lstmkit.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
