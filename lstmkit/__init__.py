"""lstmkit: reproducible, explainable LSTM forecasting over papermill notebooks and a Jupyter Book report."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up lines out of notebooks

from lstmkit.config import Config, ConfigError, load_config
from lstmkit.runfolder import RunFolder, open_run, start_run

__all__ = ["Config", "ConfigError", "RunFolder", "load_config", "open_run", "start_run"]
__version__ = "0.1.0"
