"""Temporal Fusion Transformer for past observed inputs (Lim et al. 2021, "Temporal Fusion Transformers for
interpretable multi-horizon time series forecasting", International Journal of Forecasting 37(4)).

(batch, lookback, channels) -> (batch, horizon), hidden size H = `model.units`. Our windows hold only past observed
channels (no static covariates, no known future inputs), so the network keeps the paper's past-input path:

1. Variable selection: each channel's value is embedded linearly to H, (batch, lookback, channels, H); a gated
   residual network (GRN) per channel transforms its embedding, and a GRN over all the embeddings with a softmax gives
   selection weights (batch, lookback, channels) that sum to 1 over the channels; their weighted sum is the step's
   input (batch, lookback, H).
2. An LSTM encoder (`model.layers` layers of H units, default activations: cuDNN-eligible) over the selected inputs,
   then a gated skip connection (GLU, add the selected inputs, layer norm): (batch, lookback, H).
3. Interpretable multi-head attention (`model.tft.heads` heads with their own query and key projections and one
   shared value projection; the heads' attention averaged) of the last step over every step, a gated skip with add &
   norm, a position-wise GRN and a gated skip back to the encoder's last step: (batch, H). The paper's static
   enrichment GRN is left out: with no static covariates it is one more GRN without a context to add.
4. Dense(horizon): (batch, horizon).

GRN(a) = LayerNorm(skip(a) + GLU(Dropout(W1 ELU(W2 a + b2) + b1))), GLU(g) = sigmoid(W4 g + b4) * (W5 g + b5).
`attention(network, windows)` returns the attention of the forecast (the last step's query) over the look-back steps
and the variable-selection weights averaged over the steps.
"""

from __future__ import annotations

import keras
import numpy as np

from lstmkit.config.types import Int, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {"attention": True, "variable_selection": True}


class Options(Section):
    """`model.tft`: the interpretable multi-head attention (`model.units` is the hidden size)."""

    heads: Int = opt(4, "Heads of the interpretable multi-head attention (Lim et al. 2021); `model.units` is the hidden "
                     "size.", ge=1)
SELECTION_LAYER, ATTENTION_LAYER = "variable_selection", "attention"


@keras.saving.register_keras_serializable(package="lstmkit")
class GatedLinearUnit(keras.layers.Layer):
    """GLU(x) = sigmoid(W4 x + b4) * (W5 x + b5), with dropout on its input: (..., d) -> (..., units) (W4 and W5 are
    one Dense layer of 2 * units, split)."""

    def __init__(self, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = int(units), float(dropout)
        self.drop = keras.layers.Dropout(self.dropout)
        self.dense = keras.layers.Dense(2 * self.units, name="gate_value")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x, training=None):
        g = self.dense(self.drop(x, training=training))
        return keras.ops.sigmoid(g[..., :self.units]) * g[..., self.units:]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="lstmkit")
class GateAddNorm(keras.layers.Layer):
    """LayerNorm(skip + GLU(x)): the TFT's gated skip connection, [(..., d), (..., units)] -> (..., units)."""

    def __init__(self, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = int(units), float(dropout)
        self.glu = GatedLinearUnit(self.units, self.dropout, name="glu")
        self.norm = keras.layers.LayerNormalization(name="norm")

    def build(self, input_shape):
        x_shape, _ = input_shape
        self.glu.build(x_shape)
        self.norm.build((*x_shape[:-1], self.units))

    def call(self, inputs, training=None):
        x, skip = inputs
        return self.norm(skip + self.glu(x, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="lstmkit")
class GatedResidualNetwork(keras.layers.Layer):
    """GRN(a) = LayerNorm(skip(a) + GLU(W1 ELU(W2 a + b2) + b1)): (..., d) -> (..., output_units); skip(a) is a
    linear map when d differs from output_units, else a itself."""

    def __init__(self, units: int, output_units: int | None = None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = int(units), float(dropout)
        self.output_units = int(output_units or units)
        self.hidden = keras.layers.Dense(self.units, activation="elu", name="hidden")
        self.mix = keras.layers.Dense(self.units, name="mix")
        self.gate = GateAddNorm(self.output_units, self.dropout, name="gate_add_norm")
        self.skip = None

    def build(self, input_shape):
        if input_shape[-1] != self.output_units:
            self.skip = keras.layers.Dense(self.output_units, name="skip")
            self.skip.build(input_shape)
        self.hidden.build(input_shape)
        self.mix.build((*input_shape[:-1], self.units))
        self.gate.build([(*input_shape[:-1], self.units), (*input_shape[:-1], self.output_units)])

    def call(self, a, training=None):
        skip = a if self.skip is None else self.skip(a)
        return self.gate([self.mix(self.hidden(a)), skip], training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "output_units": self.output_units,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="lstmkit")
class ChannelGatedResidualNetwork(keras.layers.Layer):
    """One GRN per channel, each with its own weights, computed together:
    (batch, steps, channels, units) -> (batch, steps, channels, units).

    For channel c: LayerNorm_c(a + GLU_c(Dropout(W1_c ELU(W2_c a + b2_c) + b1_c))); the weights carry a channel axis.
    """

    def __init__(self, units: int, channels: int, dropout: float = 0.0, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.units, self.channels, self.dropout, self.epsilon = int(units), int(channels), float(dropout), float(epsilon)
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        c, u = self.channels, self.units
        self.hidden_kernel = self.add_weight(name="hidden_kernel", shape=(c, u, u), initializer="glorot_uniform")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(c, u), initializer="zeros")
        self.mix_kernel = self.add_weight(name="mix_kernel", shape=(c, u, u), initializer="glorot_uniform")
        self.mix_bias = self.add_weight(name="mix_bias", shape=(c, u), initializer="zeros")
        self.glu_kernel = self.add_weight(name="glu_kernel", shape=(c, u, 2 * u), initializer="glorot_uniform")
        self.glu_bias = self.add_weight(name="glu_bias", shape=(c, 2 * u), initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(c, u), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(c, u), initializer="zeros")

    def call(self, a, training=None):
        ops = keras.ops
        h = ops.elu(ops.einsum("btcu,cuv->btcv", a, self.hidden_kernel) + self.hidden_bias)
        h = ops.einsum("btcu,cuv->btcv", h, self.mix_kernel) + self.mix_bias
        g = ops.einsum("btcu,cuv->btcv", self.drop(h, training=training), self.glu_kernel) + self.glu_bias
        y = a + ops.sigmoid(g[..., :self.units]) * g[..., self.units:]
        mean, var = ops.mean(y, axis=-1, keepdims=True), ops.var(y, axis=-1, keepdims=True)
        return (y - mean) / ops.sqrt(var + self.epsilon) * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "channels": self.channels, "dropout": self.dropout,
                "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="lstmkit")
class VariableSelection(keras.layers.Layer):
    """The TFT's variable-selection network over the channels of a window.

    (batch, steps, channels) -> selected inputs (batch, steps, units) and selection weights (batch, steps, channels)
    (softmax over the channels). Each channel is embedded linearly to `units` and transformed by its own GRN; a GRN
    over all the embeddings, flattened, gives the weights.
    """

    def __init__(self, units: int, channels: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.channels, self.dropout = int(units), int(channels), float(dropout)
        self.selector = GatedResidualNetwork(self.units, self.channels, self.dropout, name="selector")
        self.transform = ChannelGatedResidualNetwork(self.units, self.channels, self.dropout, name="channels")

    def build(self, input_shape):
        self.kernel = self.add_weight(name="embedding_kernel", shape=(self.channels, self.units),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="embedding_bias", shape=(self.channels, self.units), initializer="zeros")
        batch, steps = input_shape[0], input_shape[1]
        self.selector.build((batch, steps, self.channels * self.units))
        self.transform.build((batch, steps, self.channels, self.units))

    def call(self, x, training=None):
        embedded = x[..., None] * self.kernel + self.bias                   # (batch, steps, channels, units)
        flat = keras.ops.reshape(embedded, (-1, x.shape[1], self.channels * self.units))
        scores = self.selector(flat, training=training)                    # (batch, steps, channels)
        # one channel: its weight is 1 (Keras warns about a softmax over a single value); `0 * scores` keeps the
        # selector in the graph with zero gradients, so the optimiser does not warn about variables without one
        weights = 1 + 0 * scores if self.channels == 1 else keras.ops.softmax(scores, axis=-1)
        transformed = self.transform(embedded, training=training)           # (batch, steps, channels, units)
        selected = keras.ops.sum(transformed * weights[..., None], axis=2)  # (batch, steps, units)
        return selected, weights

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.units), (*input_shape[:2], self.channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "channels": self.channels, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="lstmkit")
class InterpretableMultiHeadAttention(keras.layers.Layer):
    """Interpretable multi-head attention of the last step over every step (Lim et al. 2021, eq. 14-16).

    (batch, steps, units) -> output (batch, 1, units) and weights (batch, 1, steps) summing to 1 over the steps. Each
    head has its own query and key projections of width units // heads; the value projection is shared, so the heads'
    weights average into one interpretable attention: output = W_H ((1/heads) sum_h A_h) V W_V.
    """

    def __init__(self, heads: int, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.units, self.dropout = int(heads), int(units), float(dropout)
        self.width = max(1, self.units // self.heads)
        self.query = keras.layers.EinsumDense("btd,dhk->bthk", (None, self.heads, self.width), name="query")
        self.key = keras.layers.EinsumDense("btd,dhk->bthk", (None, self.heads, self.width), name="key")
        self.value = keras.layers.Dense(self.width, name="value")
        self.out = keras.layers.Dense(self.units, name="output")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        batch, steps, d = input_shape
        self.query.build((batch, 1, d))
        self.key.build(input_shape)
        self.value.build(input_shape)
        self.out.build((batch, 1, self.width))

    def call(self, x, training=None):
        q = self.query(x[:, -1:, :])                                        # (batch, 1, heads, width)
        k = self.key(x)                                                     # (batch, steps, heads, width)
        v = self.value(x)                                                   # (batch, steps, width)
        scores = keras.ops.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(self.width).astype("float32")
        weights = keras.ops.mean(keras.ops.softmax(scores, axis=-1), axis=1)  # (batch, 1, steps)
        context = keras.ops.matmul(self.drop(weights, training=training), v)  # (batch, 1, width)
        return self.out(context), weights

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, self.units), (input_shape[0], 1, input_shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "heads": self.heads, "units": self.units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="lstmkit")
class LastStep(keras.layers.Layer):
    """The last step of a sequence, kept as a sequence of one: (batch, steps, d) -> (batch, 1, d)."""

    def call(self, x):
        return x[:, -1:, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2])


def options(spec: ModelSpec) -> dict:
    """The spec's `model.tft` settings over the defaults, checked."""
    return validated(Options, spec.options, "tft")


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled TFT: (batch, lookback, channels) -> (batch, horizon)."""
    opt = options(spec)
    units, rate, heads = int(spec.units), float(spec.dropout), int(opt["heads"])
    if heads < 1 or heads > units:
        raise ValueError(f"model.tft.heads: {heads} must lie in 1..model.units ({units})")

    def body(x):
        selected, _ = VariableSelection(units, channels, rate, name=SELECTION_LAYER)(x)
        h = selected
        for i in range(1, spec.layers + 1):
            h = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{i}")(h)
        encoded = GateAddNorm(units, rate, name="encoder_gate")([h, selected])       # (batch, lookback, units)
        attended, _ = InterpretableMultiHeadAttention(heads, units, rate, name=ATTENTION_LAYER)(encoded)
        last = LastStep(name="last_step")(encoded)                                    # (batch, 1, units)
        y = GateAddNorm(units, rate, name="attention_gate")([attended, last])
        y = GatedResidualNetwork(units, dropout=rate, name="position_wise")(y)
        y = GateAddNorm(units, rate, name="output_gate")([y, last])
        y = keras.layers.Flatten(name="flatten")(y)
        return keras.layers.Dense(horizon, name="forecast")(y)

    return assemble(spec, lookback, channels, horizon, target_index, body)


def attention(network: keras.Model, windows: np.ndarray) -> dict[str, np.ndarray]:
    """The forecast's attention over the look-back steps, `time` (n, lookback), heads averaged, and the
    variable-selection weights averaged over the steps, `variables` (n, channels); each row sums to 1."""
    probe = keras.Model(network.inputs, [network.get_layer(SELECTION_LAYER).output[1],
                                         network.get_layer(ATTENTION_LAYER).output[1]])
    windows = np.asarray(windows, dtype=np.float32)
    selection, time = (np.asarray(a, dtype=float) for a in probe.predict_on_batch(windows))
    return {"time": time[:, 0, :], "variables": selection.mean(axis=1)}
