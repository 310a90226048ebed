"""lstmkit: reproducible, explainable LSTM forecasting over papermill notebooks and a Jupyter Book report.

The notebooks' entry points are attributes of the package, each loaded when first used, so that `import lstmkit` (and
with it every subpackage, the service included) stays light: `start_run`, `open_run` and `RunFolder` (the run folder),
`load_config` (a profile checked by every layer, `lstmkit.stages.checks.load_checked`: TensorFlow loads with it) and
`load_bundle` (the bundle runtime).
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up lines out of notebooks

from lstmkit.config import Config
from lstmkit.core.errors import ConfigError, LstmkitError
from lstmkit.core.version import __version__

LAZY = {"RunFolder": ("lstmkit.runs.folder", "RunFolder"), "open_run": ("lstmkit.runs.folder", "open_run"),
        "start_run": ("lstmkit.runs.folder", "start_run"), "load_config": ("lstmkit.stages.checks", "load_checked"),
        "load_bundle": ("lstmkit.bundle.runtime", "load_bundle")}

__all__ = ["__version__", "Config", "ConfigError", "LstmkitError", *LAZY]


def __getattr__(name: str):
    """The lazy attributes of LAZY, imported on first use."""
    if name not in LAZY:
        raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
    module, attribute = LAZY[name]
    return getattr(importlib.import_module(module), attribute)
