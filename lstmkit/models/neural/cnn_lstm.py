"""Causal Conv1D feature extraction, then a stacked LSTM (CNN-LSTM; e.g. Kim & Cho 2019).

(batch, lookback, channels) -> (batch, horizon). `model.cnn_lstm.conv_layers` Conv1D layers of
`model.cnn_lstm.filters` filters and width `model.cnn_lstm.kernel_size` (causal padding, ReLU) turn the window into
(batch, lookback, filters) local features without shortening it or letting a step see a later one; `model.layers`
LSTM layers of `model.units` units (dropout between them) read those features and Dense(horizon) maps the last state
to the forecast. Default activations and no recurrent dropout keep the fused cuDNN kernel eligible on a GPU.
"""

from __future__ import annotations

import keras

from lstmkit.config.types import Int, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.lstm import lstm_stack
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


class Options(Section):
    """`model.cnn_lstm`: the convolutions before the LSTM."""

    filters: Int = opt(32, "Conv1D filters per convolution layer (before the LSTM).", ge=1)
    kernel_size: Int = opt(3, "Conv1D kernel width in time steps (causal padding: no step sees its future).", ge=1)
    conv_layers: Int = opt(2, "Convolution layers before the LSTM.", ge=1)


def options(spec: ModelSpec) -> dict:
    """The spec's `model.cnn_lstm` settings over the defaults, checked."""
    return validated(Options, spec.options, "cnn_lstm")


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled CNN-LSTM: (batch, lookback, channels) -> (batch, horizon)."""
    opts = options(spec)

    def body(x):
        for i in range(int(opts["conv_layers"])):
            x = keras.layers.Conv1D(int(opts["filters"]), int(opts["kernel_size"]), padding="causal",
                                    activation="relu", name=f"conv_{i + 1}")(x)
        return keras.layers.Dense(horizon, name="forecast")(lstm_stack(x, spec))

    return assemble(spec, lookback, channels, horizon, target_index, body)
