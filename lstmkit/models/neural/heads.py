"""Quantile heads: non-crossing quantile outputs and the pinball loss they are trained with.

Any architecture gets a quantile head (`ModelSpec.quantiles`, ascending levels holding 0.5): its body is built with
horizon * K outputs (K levels) and `MonotoneQuantiles` turns them into (batch, horizon, K) quantiles that are
non-decreasing along K BY CONSTRUCTION: the 0.5 level is a free output and every other level is the median plus (above)
or minus (below) a cumulative sum of softplus increments, summed outwards one level at a time. No sorting: each step
adds a non-negative number, and floating-point rounding is monotone, so no input can make two levels cross. The
median is the point forecast `NeuralForecaster.predict` returns.

Pinball loss of level tau (one convention, everywhere in lstmkit): rho_tau(u) = max(tau * u, (tau - 1) * u) with
u = y - q, averaged over the windows, horizon steps and levels. For one level it equals scikit-learn's
`mean_pinball_loss(alpha=tau)` (NO factor 2; CRPS from quantiles is twice the average over a grid).
"""

from __future__ import annotations

import keras
import numpy as np

from lstmkit.config import ConfigError
from lstmkit.models.neural.spec import ModelSpec

HEAD_LAYER = "quantiles"  # name of the MonotoneQuantiles layer in a network with a quantile head
MEDIAN = 0.5


def check_levels(levels: list[float]) -> list[float]:
    """Quantile levels of a head as floats, checked: ascending, distinct, strictly in (0, 1), 0.5 among them."""
    try:
        values = [float(q) for q in levels]
    except (TypeError, ValueError):
        raise ConfigError(f"quantile head levels (ModelSpec.quantiles): expected a list of numbers, got {levels!r}") from None
    if not values:
        raise ConfigError("quantile head levels (ModelSpec.quantiles): empty; a point network has no head")
    if any(not 0 < q < 1 for q in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"quantile head levels (ModelSpec.quantiles): must be distinct, ascending and strictly "
                          f"between 0 and 1, got {values}")
    if not any(np.isclose(q, MEDIAN, rtol=0, atol=1e-9) for q in values):
        raise ConfigError(f"quantile head levels (ModelSpec.quantiles): 0.5 must be among them (the median is the "
                          f"point forecast), got {values}")
    return values


def median_index(levels: list[float]) -> int:
    """Position of the 0.5 level in a head's ascending levels."""
    return int(np.argmin(np.abs(np.asarray(levels, dtype=float) - MEDIAN)))


def check_architecture(spec: ModelSpec, module_has_own_loss: bool = False) -> None:
    """ConfigError when the spec's architecture cannot carry a quantile head (no-op for a point spec)."""
    if not spec.quantiles:
        return
    check_levels(spec.quantiles)
    if module_has_own_loss:
        raise ConfigError(f"model.architecture {spec.architecture}: trained by its own likelihood (it forecasts "
                          f"sample paths); a quantile head (pinball loss) does not apply: leave ModelSpec.quantiles "
                          f"empty and use predict_samples")
    if spec.architecture == "nbeats":
        if spec.options.get("stacks", "generic") == "interpretable":
            raise ConfigError("model.nbeats.stacks: interpretable N-BEATS forecasts through fixed trend and "
                              "seasonality bases over the horizon, which cannot carry K quantiles per step; use "
                              "stacks: generic for a quantile head")


def body_width(spec: ModelSpec, horizon: int) -> int:
    """Outputs the architecture's body must produce: horizon, or horizon * K under a quantile head of K levels."""
    return horizon * len(spec.quantiles) if spec.quantiles else horizon


@keras.saving.register_keras_serializable(package="lstmkit")
class MonotoneQuantiles(keras.layers.Layer):
    """Raw outputs (batch, horizon * K) -> quantiles (batch, horizon, K), non-decreasing along K by construction.

    The raw value of level k at step t is raw[:, t * K + k]. The 0.5 level is its raw value; level k above it is
    level k - 1 plus softplus(raw_k); level k below it is level k + 1 minus softplus(raw_k).
    """

    def __init__(self, levels: list[float], **kwargs):
        super().__init__(**kwargs)
        self.levels = check_levels(levels)
        self.middle = median_index(self.levels)

    def call(self, raw):
        """Quantiles (batch, horizon, K) from raw outputs (batch, horizon * K)."""
        k = len(self.levels)
        r = keras.ops.reshape(raw, (-1, raw.shape[-1] // k, k))
        cols: list = [None] * k
        cols[self.middle] = r[..., self.middle]
        for i in range(self.middle + 1, k):           # outwards above the median, one level at a time
            cols[i] = cols[i - 1] + keras.ops.softplus(r[..., i])
        for i in range(self.middle - 1, -1, -1):      # and below it
            cols[i] = cols[i + 1] - keras.ops.softplus(r[..., i])
        return keras.ops.stack(cols, axis=-1)

    def compute_output_shape(self, input_shape):
        """(batch, horizon, K) from (batch, horizon * K)."""
        k = len(self.levels)
        return (input_shape[0], input_shape[-1] // k, k)

    def get_config(self) -> dict:
        """The layer's configuration with its levels (safe-mode loading rebuilds it from this)."""
        return {**super().get_config(), "levels": self.levels}


def pinball_loss(y_true, y_pred, levels: list[float]):
    """Pinball loss per window (batch,): targets (batch, horizon), quantiles (batch, horizon, K) at `levels` (K,);
    rho_tau(u) = max(tau u, (tau - 1) u), u = y - q, averaged over the horizon steps and levels (keras.ops)."""
    y_pred = keras.ops.convert_to_tensor(y_pred)
    y_true = keras.ops.cast(keras.ops.convert_to_tensor(y_true), y_pred.dtype)
    y_true = keras.ops.reshape(y_true, (-1, y_pred.shape[1]))
    tau = keras.ops.convert_to_tensor(np.asarray(levels, dtype=np.float32), dtype=y_pred.dtype)
    u = keras.ops.expand_dims(y_true, -1) - y_pred
    return keras.ops.mean(keras.ops.maximum(tau * u, (tau - 1) * u), axis=(1, 2))


@keras.saving.register_keras_serializable(package="lstmkit")
class PinballLoss(keras.losses.Loss):
    """The pinball loss (`pinball_loss`) of a quantile head's levels, averaged over windows, steps and levels."""

    def __init__(self, levels: list[float], name: str = "pinball", reduction: str = "sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.levels = check_levels(levels)

    def call(self, y_true, y_pred):
        """Pinball loss per window (batch,) of targets (batch, horizon) and quantiles (batch, horizon, K)."""
        return pinball_loss(y_true, y_pred, self.levels)

    def get_config(self) -> dict:
        """The loss's configuration with its levels (saved with the compiled model)."""
        return {**super().get_config(), "levels": self.levels}


def median_absolute_error(y_true, y_pred, median: int = 0):
    """Absolute error of the median quantile per window (batch,): targets (batch, horizon), quantiles
    (batch, horizon, K) whose level `median` is 0.5."""
    y_pred = keras.ops.convert_to_tensor(y_pred)
    y_true = keras.ops.cast(keras.ops.convert_to_tensor(y_true), y_pred.dtype)
    return keras.ops.mean(keras.ops.abs(keras.ops.reshape(y_true, (-1, y_pred.shape[1])) - y_pred[..., median]),
                          axis=1)


@keras.saving.register_keras_serializable(package="lstmkit")
class MedianMAE(keras.metrics.MeanMetricWrapper):
    """Mean absolute error of a quantile head's median: the `mae` a point network reports, for the same history."""

    def __init__(self, levels: list[float], name: str = "mae", dtype=None):
        self.levels = check_levels(levels)
        super().__init__(fn=median_absolute_error, name=name, dtype=dtype, median=median_index(self.levels))

    def get_config(self) -> dict:
        """Name, dtype and levels: all that rebuilds the metric."""
        return {"name": self.name, "dtype": self.dtype, "levels": self.levels}

    @classmethod
    def from_config(cls, config: dict) -> MedianMAE:
        """The metric get_config describes."""
        return cls(**config)
