"""Stacked GRU with a direct multi-step head (Cho et al. 2014): the LSTM's lighter gated cousin.

(batch, lookback, channels) -> (batch, horizon). Uses `model.layers` GRU layers of `model.units` units with dropout
between them, then Dense(horizon) on the last layer's final state. Default activations, `reset_after=True` and no
recurrent dropout keep the fused cuDNN kernel eligible on a GPU.
"""

from __future__ import annotations

import keras

from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled stacked GRU: (batch, lookback, channels) -> (batch, horizon)."""

    def body(x):
        for i in range(spec.layers):
            x = keras.layers.GRU(spec.units, return_sequences=i < spec.layers - 1, reset_after=True,
                                 name=f"gru_{i + 1}")(x)
            if spec.dropout > 0:
                x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
        return keras.layers.Dense(horizon, name="forecast")(x)

    return assemble(spec, lookback, channels, horizon, target_index, body)
