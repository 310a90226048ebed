"""Layers and assembly shared by every neural architecture: per-window normalisation around a network body."""

from __future__ import annotations

from collections.abc import Callable

import keras

from lstmkit.models.neural.heads import HEAD_LAYER, MedianMAE, MonotoneQuantiles, PinballLoss
from lstmkit.models.neural.spec import ModelSpec

OPTIMIZER_CLASSES = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


@keras.saving.register_keras_serializable(package="lstmkit")
class WindowNormalization(keras.layers.Layer):
    """Normalise each window by its own statistics; also returns the target channel's shift and scale.

    (batch, lookback, channels) -> normalised (batch, lookback, channels), shift (batch, 1), scale (batch, 1).
    `last` subtracts each channel's last value; `revin` uses each window's mean and standard deviation (Kim et al. 2022).
    """

    def __init__(self, method: str, target_index: int = -1, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.method, self.target_index, self.epsilon = method, target_index, epsilon

    def call(self, x):
        if self.method == "last":
            shift, scale = x[:, -1:, :], keras.ops.ones_like(x[:, -1:, :])
        else:  # revin: the window's own mean and standard deviation
            shift = keras.ops.mean(x, axis=1, keepdims=True)
            scale = keras.ops.sqrt(keras.ops.var(x, axis=1, keepdims=True) + self.epsilon)
        t = self.target_index
        return (x - shift) / scale, shift[:, :, t], scale[:, :, t]

    def get_config(self) -> dict:
        return {**super().get_config(), "method": self.method, "target_index": self.target_index, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="lstmkit")
class WindowDenormalization(keras.layers.Layer):
    """Map a forecast made in normalised units back: y * scale + shift of the target channel; y (batch, horizon) or
    quantiles (batch, horizon, K), shift and scale (batch, 1) (broadcast over K; scale > 0 keeps quantiles in order)."""

    def call(self, inputs):
        y, shift, scale = inputs
        if len(y.shape) == 3:
            shift, scale = shift[:, :, None], scale[:, :, None]
        return y * scale + shift


def assemble(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int,
             body: Callable[[keras.KerasTensor], keras.KerasTensor]) -> keras.Model:
    """A functional model (batch, lookback, channels) -> (batch, horizon) from a body mapping normalised windows to
    (batch, horizon), wrapped in the spec's per-window normalisation (named `<architecture>_forecaster`).

    Under a quantile head (`spec.quantiles`, K levels) `horizon` is the body's width, forecast horizon * K
    (`heads.body_width`, as `neural.build_network` passes it), and the model maps to quantiles (batch, horizon / K, K)
    through `heads.MonotoneQuantiles` (layer `quantiles`) before the denormalisation.
    """
    inputs = keras.Input(shape=(lookback, channels), name="window")
    x = inputs
    if spec.normalization != "none":
        x, shift, scale = WindowNormalization(spec.normalization, target_index, name="window_norm")(x)
    outputs = body(x)
    if spec.quantiles:
        outputs = MonotoneQuantiles(spec.quantiles, name=HEAD_LAYER)(outputs)
    if spec.normalization != "none":
        outputs = WindowDenormalization(name="denorm")([outputs, shift, scale])
    return keras.Model(inputs, outputs, name=f"{spec.architecture}_forecaster")


def compile_network(model: keras.Model, spec: ModelSpec) -> keras.Model:
    """Compile with the spec's optimiser and learning rate, MSE loss and MAE metric; a quantile head (`spec.quantiles`)
    is trained with the pinball loss of its levels and reports the MAE of its median as `mae`."""
    optimizer = OPTIMIZER_CLASSES[spec.optimizer](learning_rate=spec.learning_rate)
    if spec.quantiles:
        model.compile(optimizer=optimizer, loss=PinballLoss(spec.quantiles), metrics=[MedianMAE(spec.quantiles)])
    else:
        model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model
