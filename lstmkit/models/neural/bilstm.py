"""Bidirectional LSTM over the look-back window (Schuster & Paliwal 1997; Graves & Schmidhuber 2005).

(batch, lookback, channels) -> (batch, horizon). Each of the `model.layers` layers runs one LSTM of `model.units`
units forward and one backward over the window and concatenates them (2 x units per step); dropout between layers.
Dense(horizon) reads the last layer's final states: the forward LSTM's after the newest step and the backward LSTM's
after the oldest. The window lies wholly in the past, so reading it both ways sees no future value. Default
activations and no recurrent dropout keep the fused cuDNN kernel eligible on a GPU.
"""

from __future__ import annotations

import keras

from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled stacked bidirectional LSTM: (batch, lookback, channels) -> (batch, horizon)."""

    def body(x):
        for i in range(spec.layers):
            lstm = keras.layers.LSTM(spec.units, return_sequences=i < spec.layers - 1, name=f"lstm_{i + 1}")
            x = keras.layers.Bidirectional(lstm, merge_mode="concat", name=f"bilstm_{i + 1}")(x)
            if spec.dropout > 0:
                x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
        return keras.layers.Dense(horizon, name="forecast")(x)

    return assemble(spec, lookback, channels, horizon, target_index, body)
