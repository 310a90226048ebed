"""lstmkit: reproducible, explainable LSTM forecasting over papermill notebooks and a Jupyter Book report."""

from lstmkit.config import Config, ConfigError, load_config
from lstmkit.runfolder import RunFolder, open_run, start_run

__all__ = ["Config", "ConfigError", "RunFolder", "load_config", "open_run", "start_run"]
__version__ = "0.1.0"
