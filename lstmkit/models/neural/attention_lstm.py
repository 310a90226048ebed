"""LSTM encoder with temporal attention over its states (Bahdanau et al. 2015 additive score; Luong et al. 2015 dot).

(batch, lookback, channels) -> (batch, horizon). A stack of `model.layers` LSTM layers of `model.units` units encodes
the look-back window into states (batch, lookback, units); the last hidden state (batch, units) is the query that
scores every encoder state (`model.attention_lstm.score`: `additive` v^T tanh(W_q q + W_k h_t), or `dot` q . h_t).
The softmax of the scores over the look-back steps gives the attention weights (batch, lookback), their weighted sum
of the states the context (batch, units), and Dense(horizon) maps concat(context, last state) to the forecast.

`attention(network, windows)` reads the weights back from the layer named `temporal_attention`. Default activations
and no recurrent dropout keep the fused cuDNN kernel eligible on a GPU.
"""

from __future__ import annotations

import keras
import numpy as np

from lstmkit.config.types import Choice, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {"attention": True}


SCORES = ("additive", "dot")


class Options(Section):
    """`model.attention_lstm`: how the last state scores the encoder states."""

    score: Choice(SCORES) = opt("additive", "Attention score of the last state over the encoder states: `additive` "
                                "(Bahdanau et al. 2015) or `dot` (Luong et al. 2015).")


ATTENTION_LAYER = "temporal_attention"


@keras.saving.register_keras_serializable(package="lstmkit")
class TemporalAttention(keras.layers.Layer):
    """Attention of a query over a sequence of states: returns the context and the weights over the steps.

    Inputs [states (batch, steps, dim), query (batch, dim)] -> context (batch, dim), weights (batch, steps) (rows sum
    to 1). `score`: `additive` (Bahdanau et al. 2015, `units` hidden units) or `dot` (Luong et al. 2015, no weights).
    """

    def __init__(self, score: str = "additive", units: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"model.attention_lstm.score: {score!r} is not one of {', '.join(SCORES)}")
        self.score, self.units = score, units

    def build(self, input_shape):
        """Create the additive score's weights W_k, W_q (dim, units) and v (units,); the dot score has none."""
        states_shape, query_shape = input_shape
        dim = int(states_shape[-1])
        if int(query_shape[-1]) != dim and self.score == "dot":
            raise ValueError(f"dot attention needs a query as wide as the states ({dim}), got {query_shape[-1]}")
        if self.score == "additive":
            units = self.units or dim
            self.w_keys = self.add_weight(shape=(dim, units), initializer="glorot_uniform", name="w_keys")
            self.w_query = self.add_weight(shape=(int(query_shape[-1]), units), initializer="glorot_uniform",
                                           name="w_query")
            self.v = self.add_weight(shape=(units,), initializer="glorot_uniform", name="v")

    def call(self, inputs):
        """Context (batch, dim) and softmax weights (batch, steps) of the query over the states."""
        states, query = inputs
        if self.score == "additive":
            hidden = keras.ops.tanh(keras.ops.matmul(states, self.w_keys)
                                    + keras.ops.expand_dims(keras.ops.matmul(query, self.w_query), 1))
            scores = keras.ops.einsum("btu,u->bt", hidden, self.v)
        else:
            scores = keras.ops.einsum("btd,bd->bt", states, query)
        weights = keras.ops.softmax(scores, axis=-1)
        context = keras.ops.einsum("bt,btd->bd", weights, states)
        return context, weights

    def compute_output_shape(self, input_shape):
        """((batch, dim), (batch, steps))."""
        states_shape, _ = input_shape
        return (states_shape[0], states_shape[-1]), (states_shape[0], states_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "score": self.score, "units": self.units}


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled attention LSTM: (batch, lookback, channels) -> (batch, horizon)."""
    score = validated(Options, spec.options, "attention_lstm")["score"]

    def body(x):
        for i in range(spec.layers - 1):
            x = keras.layers.LSTM(spec.units, return_sequences=True, name=f"lstm_{i + 1}")(x)
            if spec.dropout > 0:
                x = keras.layers.Dropout(spec.dropout, name=f"dropout_{i + 1}")(x)
        states, last, _ = keras.layers.LSTM(spec.units, return_sequences=True, return_state=True,
                                            name=f"lstm_{spec.layers}")(x)
        context, _weights = TemporalAttention(score, name=ATTENTION_LAYER)([states, last])
        x = keras.layers.Concatenate(name="context_and_last")([context, last])
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"dropout_{spec.layers}")(x)
        return keras.layers.Dense(horizon, name="forecast")(x)

    return assemble(spec, lookback, channels, horizon, target_index, body)


def attention(network: keras.Model, windows: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Attention weights over the look-back steps: {"time": (windows, lookback)}, each row summing to 1."""
    weights = keras.Model(network.inputs, network.get_layer(ATTENTION_LAYER).output[1])
    windows = np.asarray(windows, dtype=np.float32)
    out = [np.asarray(weights.predict_on_batch(windows[a:a + batch_size]), dtype=float)
           for a in range(0, len(windows), batch_size)]
    return {"time": np.concatenate(out) if out else np.empty((0, network.input_shape[1]))}
