"""Stacked LSTM with a direct multi-step head (Hochreiter & Schmidhuber 1997): the project's reference network.

(batch, lookback, channels) -> (batch, horizon). Uses `model.layers` LSTM layers of `model.units` units with dropout
between them. Default activations and no recurrent dropout keep the fused cuDNN kernel eligible on a GPU.
"""

from __future__ import annotations

import keras

from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


def lstm_stack(x: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    """`spec.layers` LSTM layers of `spec.units` with dropout after each: (batch, steps, features) -> (batch, units),
    the last layer's final state."""
    for i in range(spec.layers):
        x = keras.layers.LSTM(spec.units, return_sequences=i < spec.layers - 1, name=f"lstm_{i + 1}")(x)
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
    return x


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled stacked LSTM: (batch, lookback, channels) -> (batch, horizon)."""
    return assemble(spec, lookback, channels, horizon, target_index,
                    lambda x: keras.layers.Dense(horizon, name="forecast")(lstm_stack(x, spec)))
