"""Temporal Convolutional Network (Bai, Kolter & Koltun 2018, "An Empirical Evaluation of Generic Convolutional and
Recurrent Networks for Sequence Modeling"): residual blocks of causal dilated convolutions, then a direct
multi-step head.

(batch, lookback, channels) -> (batch, horizon). Each residual block holds two causal Conv1D layers of
`model.tcn.filters` filters, kernel `model.tcn.kernel_size` and the block's dilation, each followed by ReLU and
dropout (`model.dropout`); the block's input is added back (through a 1x1 Conv1D where the widths differ) and a ReLU
follows. Block outputs are (batch, lookback, filters); the output at step t depends on input steps <= t only
(causal padding; with `model.normalization: revin` the window's own mean and spread, taken over every step, come
first). The head is Dense(horizon) on the last step's features, which see the receptive field
1 + 2 (kernel_size - 1) sum(dilations) steps back: with `model.tcn.dilations` empty the dilations are 1, 2, 4, ...
until that covers the look-back window. The paper's weight normalisation is left out (plain Conv1D).
"""

from __future__ import annotations

import warnings

import keras

from lstmkit.config import ConfigError
from lstmkit.config.types import Int, List, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


class Options(Section):
    """`model.tcn`: the residual blocks of causal dilated convolutions."""

    filters: Int = opt(32, "Conv1D filters of every residual block.", ge=1)
    kernel_size: Int = opt(3, "Kernel width of the causal dilated convolutions (at least 2: a kernel of 1 sees one step "
                           "only).", ge=2)
    dilations: List = opt([], "Dilation of each residual block; empty (the default): 1, 2, 4, ... until the receptive "
                          "field 1 + 2 (kernel_size - 1) sum(dilations) covers the look-back window.")
STACK_OUTPUT = "tcn_stack"  # name of the last residual block's output layer: (batch, lookback, filters), causal


def receptive_field(kernel_size: int, dilations: list[int]) -> int:
    """Steps (the current one included) that the last residual block's output at one step sees: 1 + 2 (k-1) sum(d)."""
    return 1 + 2 * (kernel_size - 1) * sum(dilations)


def auto_dilations(lookback: int, kernel_size: int) -> list[int]:
    """Dilations 1, 2, 4, ... (at least one block) until the receptive field covers `lookback` steps."""
    dilations = [1]
    while receptive_field(kernel_size, dilations) < lookback:
        dilations.append(2 * dilations[-1])
    return dilations


def options(spec: ModelSpec, lookback: int) -> dict:
    """The spec's `model.tcn` settings over the defaults, checked, with the dilations resolved."""
    opts = validated(Options, spec.options, "tcn")
    dilations = list(opts["dilations"] or [])
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
        raise ConfigError(f"model.tcn.dilations: expected a list of positive whole numbers, got {opts['dilations']!r}")
    if not dilations:
        dilations = auto_dilations(lookback, opts["kernel_size"])
    elif receptive_field(opts["kernel_size"], dilations) < lookback:
        warnings.warn(f"model.tcn.dilations {dilations} with kernel_size {opts['kernel_size']} see "
                      f"{receptive_field(opts['kernel_size'], dilations)} steps, fewer than the look-back of "
                      f"{lookback}: the earliest steps are ignored", stacklevel=2)
    return opts | {"dilations": dilations}


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled TCN: (batch, lookback, channels) -> (batch, horizon)."""
    opts = options(spec, lookback)
    filters, kernel = opts["filters"], opts["kernel_size"]

    def body(x):
        width = channels
        for i, d in enumerate(opts["dilations"], start=1):
            y = x
            for j in (1, 2):
                y = keras.layers.Conv1D(filters, kernel, padding="causal", dilation_rate=d, activation="relu",
                                        name=f"block_{i}_conv_{j}")(y)
                if spec.dropout > 0:
                    y = keras.layers.Dropout(spec.dropout, name=f"block_{i}_dropout_{j}")(y)
            skip = x if width == filters else keras.layers.Conv1D(filters, 1, name=f"block_{i}_skip")(x)
            x = keras.layers.Add(name=f"block_{i}_residual")([y, skip])
            last = i == len(opts["dilations"])
            x = keras.layers.Activation("relu", name=STACK_OUTPUT if last else f"block_{i}_out")(x)
            width = filters
        x = keras.layers.Cropping1D((lookback - 1, 0), name="last_step")(x)  # (batch, 1, filters)
        x = keras.layers.Flatten(name="last_features")(x)
        return keras.layers.Dense(horizon, name="forecast")(x)

    return assemble(spec, lookback, channels, horizon, target_index, body)


def stack_model(network: keras.Model) -> keras.Model:
    """The network up to its last residual block: (batch, lookback, channels) -> (batch, lookback, filters)."""
    return keras.Model(network.inputs, network.get_layer(STACK_OUTPUT).output, name="tcn_stack")
