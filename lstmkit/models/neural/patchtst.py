"""PatchTST: a channel-independent Transformer over patches of the look-back window (Nie et al. 2023, "A Time Series
is Worth 64 Words: Long-term Forecasting with Transformers", ICLR 2023).

(batch, lookback, channels) -> (batch, horizon). The normalised window is read channel by channel, each channel a
univariate series forecast by the same weights from its own history alone (channel independence); the forecast is the
target channel's. The target channel's series, padded at its end with `stride` copies of its last value, is cut into
patches of `patch_len` steps every `stride` steps: floor((lookback - patch_len) / stride) + 2 patches (42 for the
paper's look-back 336, patch_len 16, stride 8). Each patch is embedded linearly to `d_model` and a learned positional
embedding is added: (batch, patches, d_model). `layers` Transformer encoder layers (multi-head self-attention with
`heads` heads, then a GELU feed-forward network of width `d_ff`, each with dropout `model.dropout`, a residual
connection and a BatchNorm or LayerNorm after it, as in the paper's post-norm encoder) keep that shape; the flatten
head maps (batch, patches * d_model) to (batch, horizon).

The paper's setting is `model.normalization: revin` (each window standardised by its own mean and deviation and the
forecast mapped back; `layers.assemble` does it for every architecture). Settings: `model.patchtst` (PatchTSTConfig);
the paper's ETTh2 ones are patch_len 16, stride 8, d_model 16, heads 4, layers 3, d_ff 128, dropout 0.3, batch 128,
learning rate 1e-4. Differences from the reference implementation: the attention scores are not passed on from layer
to layer (its "residual attention"), and only the target channel's pass is computed: the training loss is on the
target alone, so the other channels' passes (same weights, their own inputs) could not change the forecast or the
gradients (with BatchNorm they would only enter its batch statistics).
"""

from __future__ import annotations

import keras
import numpy as np

from lstmkit.config.types import Choice, Int, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}
NORMS = ("batch", "layer")


class Options(Section):
    """`model.patchtst`: the patches and the Transformer encoder."""

    patch_len: Int = opt(16, "Time steps per patch (Nie et al. 2023: 16).", ge=1)
    stride: Int = opt(8, "Steps between the starts of successive patches (8: half-overlapping).", ge=1)
    d_model: Int = opt(16, "Width of the Transformer (the paper's ETTh2 setting: 16).", ge=1)
    heads: Int = opt(4, "Attention heads.", ge=1)
    layers: Int = opt(3, "Transformer encoder layers.", ge=1)
    d_ff: Int = opt(128, "Width of each encoder layer's feed-forward network.", ge=1)
    norm: Choice(NORMS) = opt("batch",
        "Normalisation after each encoder sub-layer: `batch` (BatchNorm over d_model, the paper's) or `layer` (LayerNorm). The paper pairs the model with `model.normalization: revin`, `model.dropout: 0.3`, learning rate 1e-4 and batch size 128 on ETTh2.")


def patch_geometry(lookback: int, patch_len: int, stride: int) -> tuple[int, int, int]:
    """(patch_len, stride, patches) for a look-back: a look-back shorter than patch_len is one patch of it; with the
    end padding of `stride` steps there are floor((lookback - patch_len) / stride) + 2 patches."""
    if patch_len < 1 or stride < 1:
        raise ValueError(f"model.patchtst: patch_len ({patch_len}) and stride ({stride}) must be at least 1")
    patch_len = min(patch_len, lookback)
    stride = min(stride, patch_len)
    return patch_len, stride, (lookback - patch_len) // stride + 2


@keras.saving.register_keras_serializable(package="lstmkit")
class Patching(keras.layers.Layer):
    """One channel of a window cut into overlapping patches, after padding its end with `stride` copies of its last
    value: (batch, lookback, channels) -> (batch, patches, patch_len)."""

    def __init__(self, patch_len: int, stride: int, channel: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.patch_len, self.stride, self.channel = int(patch_len), int(stride), int(channel)

    def call(self, x):
        series = x[:, :, self.channel]                                     # (batch, lookback)
        padded = keras.ops.concatenate([series] + [series[:, -1:]] * self.stride, axis=1)
        lookback = x.shape[1]
        starts = np.arange(0, lookback + self.stride - self.patch_len + 1, self.stride)
        index = starts[:, None] + np.arange(self.patch_len)[None, :]       # (patches, patch_len)
        return keras.ops.take(padded, keras.ops.convert_to_tensor(index.astype("int32")), axis=1)

    def compute_output_shape(self, input_shape):
        _, _, patches = patch_geometry(input_shape[1], self.patch_len, self.stride)
        return (input_shape[0], patches, self.patch_len)

    def get_config(self) -> dict:
        return {**super().get_config(), "patch_len": self.patch_len, "stride": self.stride, "channel": self.channel}


@keras.saving.register_keras_serializable(package="lstmkit")
class PositionalEmbedding(keras.layers.Layer):
    """Add a learned embedding of each position: (batch, positions, width) -> same shape (initialised uniform in
    [-0.02, 0.02], as the reference implementation's learned positional encoding)."""

    def build(self, input_shape):
        self.embedding = self.add_weight(name="embedding", shape=tuple(input_shape[1:]),
                                         initializer=keras.initializers.RandomUniform(-0.02, 0.02))

    def call(self, x):
        return x + self.embedding

    def compute_output_shape(self, input_shape):
        return input_shape


def options(spec: ModelSpec) -> dict:
    """The spec's `model.patchtst` settings over the defaults, checked."""
    return validated(Options, spec.options, "patchtst")


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled PatchTST: (batch, lookback, channels) -> (batch, horizon)."""
    opt = options(spec)
    d_model, heads, d_ff = int(opt["d_model"]), int(opt["heads"]), int(opt["d_ff"])
    if opt["norm"] not in NORMS:
        raise ValueError(f"model.patchtst.norm: {opt['norm']!r} is not one of {', '.join(NORMS)}")
    if d_model % heads:
        raise ValueError(f"model.patchtst: d_model ({d_model}) must be a multiple of heads ({heads})")
    patch_len, stride, _ = patch_geometry(lookback, int(opt["patch_len"]), int(opt["stride"]))
    rate = float(spec.dropout)

    def norm(name: str) -> keras.layers.Layer:
        """The encoder's normalisation over d_model: BatchNorm (the paper's) or LayerNorm."""
        if opt["norm"] == "batch":
            return keras.layers.BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, name=name)
        return keras.layers.LayerNormalization(epsilon=1e-5, name=name)

    def body(x):
        x = Patching(patch_len, stride, target_index % channels, name="patching")(x)
        x = keras.layers.Dense(d_model, name="patch_embedding")(x)
        x = PositionalEmbedding(name="position_embedding")(x)
        x = keras.layers.Dropout(rate, name="embedding_dropout")(x)
        for i in range(1, int(opt["layers"]) + 1):
            a = keras.layers.MultiHeadAttention(heads, d_model // heads, name=f"attention_{i}")(x, x)
            a = keras.layers.Dropout(rate, name=f"attention_dropout_{i}")(a)
            x = norm(f"attention_norm_{i}")(keras.layers.Add(name=f"attention_residual_{i}")([x, a]))
            f = keras.layers.Dense(d_ff, activation="gelu", name=f"ff_in_{i}")(x)
            f = keras.layers.Dropout(rate, name=f"ff_dropout_{i}")(f)
            f = keras.layers.Dense(d_model, name=f"ff_out_{i}")(f)
            f = keras.layers.Dropout(rate, name=f"ff_out_dropout_{i}")(f)
            x = norm(f"ff_norm_{i}")(keras.layers.Add(name=f"ff_residual_{i}")([x, f]))
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.layers.Dense(horizon, name="forecast")(x)

    return assemble(spec, lookback, channels, horizon, target_index, body)
