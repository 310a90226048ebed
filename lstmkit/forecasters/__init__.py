"""Every forecaster behind one contract (`base.Forecaster`): the baselines (`baselines`) and one file per neural
architecture (`lstm`, `gru`, `bilstm`, `cnn_lstm`, `attention_lstm`, `tcn`, `nbeats`, `patchtst`, `tft`), trained
through `neural.NeuralForecaster`. Importing this package does not import Keras; `neural` does.
"""

from lstmkit.forecasters.base import TAGS, Forecaster, ForecasterError, load
from lstmkit.forecasters.spec import ModelSpec

__all__ = ["TAGS", "Forecaster", "ForecasterError", "ModelSpec", "load"]
