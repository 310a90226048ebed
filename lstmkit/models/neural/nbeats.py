"""N-BEATS (Oreshkin, Carpov, Chapados & Bengio 2020, "N-BEATS: Neural basis expansion analysis for interpretable
time series forecasting", ICLR): stacks of fully connected blocks with doubly residual stacking.

(batch, lookback, channels) -> (batch, horizon). Univariate, as in the paper: the network reads the TARGET channel
of the (normalised) window only, (batch, lookback); the other channels are ignored (their attributions are zero).
Each block maps its input (batch, lookback) through `model.nbeats.fc_layers` Dense(`width`, ReLU) layers (with
dropout `model.dropout` after each, as NeuralForecast does; the paper uses none) to expansion coefficients theta and
emits a backcast (batch, lookback) and a forecast (batch, horizon) through a basis. Doubly residual stacking: the next
block reads its input minus the backcast; the forecast is the sum of every block's forecast.

`model.nbeats.stacks`:
- `generic` (N-BEATS-G): two stacks (`generic_1`, `generic_2`) of `blocks` blocks with learned linear bases: as in the
  paper's reference code, each block's last layer is a linear theta of lookback + horizon values, its first lookback
  the backcast and the rest the forecast (the last block's backcast part feeds nothing).
- `interpretable` (N-BEATS-I): the blocks of a stack share their weights, as in the paper. A `trend` stack, basis the
  polynomials t^0..t^degree (t = step / size in [0, 1) over the look-back and over the horizon, as the paper's
  reference code), then a `seasonality` stack, basis a
  constant and cos/sin(2 pi k t / lookback), k = 1..harmonics (at most (lookback - 1) // 2), on one time axis of
  steps (look-back steps -lookback..-1, forecast steps 0..horizon-1): seasonal patterns whose period divides the
  look-back continue into the forecast. The bases are fixed matrices computed from lookback and horizon in
  `BasisExpansion` (no trainable weights).
`stack_forecasts(network, windows)` gives each stack's forecast contribution; they sum to the network's forecast.
"""

from __future__ import annotations

import keras
import numpy as np

from lstmkit.config.types import Choice, Int, Section, opt
from lstmkit.models.neural.layers import assemble
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {}


class Options(Section):
    """`model.nbeats`: the stacks, blocks and basis of N-BEATS."""

    stacks: Choice(("generic", "interpretable")) = opt("generic",
        "`generic` (two stacks with learned linear bases, N-BEATS-G) or `interpretable` (a polynomial trend stack, then a Fourier seasonality stack, the blocks of a stack sharing weights: N-BEATS-I), Oreshkin et al. 2020. N-BEATS is univariate, as in the paper: it reads the target channel of the window only and ignores the features.")
    blocks: Int = opt(3, "Blocks per stack.", ge=1)
    fc_layers: Int = opt(4, "Fully connected layers per block.", ge=1)
    width: Int = opt(256, "Units of each fully connected layer.", ge=1)
    degree: Int = opt(3, "Interpretable stacks: degree of the trend polynomial.", ge=0)
    harmonics: Int = opt(8, "Interpretable stacks: Fourier harmonics of the seasonality basis, periods lookback / k "
                         "steps for k = 1..harmonics (at most (lookback - 1) // 2).", ge=0)
STACK_PREFIX = "stack_"  # each stack's summed forecast is the layer `stack_<name>`: (batch, horizon), normalised units
GENERIC_STACKS = 2


def harmonics_used(lookback: int, harmonics: int) -> int:
    """Harmonics of the seasonality basis: the setting, capped below the Nyquist frequency of the look-back."""
    return max(0, min(harmonics, (lookback - 1) // 2))


def basis_matrix(kind: str, part: str, lookback: int, horizon: int, degree: int = 3, harmonics: int = 8) -> np.ndarray:
    """Fixed basis (coefficients, steps) of a block: `trend` polynomials, `seasonality` Fourier terms, or for `generic`
    blocks the selection of the backcast or forecast part of theta; over the look-back (`part="backcast"`,
    steps = lookback) or the horizon (`part="forecast"`, steps = horizon)."""
    size = lookback if part == "backcast" else horizon
    if kind == "generic":  # theta holds the backcast, then the forecast: the basis selects its part
        selection = np.eye(lookback + horizon, dtype=np.float32)
        return selection[:, :lookback] if part == "backcast" else selection[:, lookback:]
    if kind == "trend":
        t = np.arange(size) / size
        return np.stack([t ** p for p in range(degree + 1)]).astype(np.float32)
    steps = np.arange(-lookback, 0) if part == "backcast" else np.arange(horizon)
    rows = [np.ones(size)]
    for k in range(1, harmonics_used(lookback, harmonics) + 1):
        angle = 2 * np.pi * k * steps / lookback
        rows += [np.cos(angle), np.sin(angle)]
    return np.stack(rows).astype(np.float32)


@keras.saving.register_keras_serializable(package="lstmkit")
class TargetChannel(keras.layers.Layer):
    """Select one channel of a window: (batch, lookback, channels) -> (batch, lookback)."""

    def __init__(self, index: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.index = index

    def call(self, x):
        return x[:, :, self.index]

    def compute_output_shape(self, input_shape):
        return input_shape[:2]

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="lstmkit")
class BasisExpansion(keras.layers.Layer):
    """Expand coefficients theta (batch, coefficients) on a fixed basis (basis_matrix) into (batch, steps)."""

    def __init__(self, kind: str, part: str, lookback: int, horizon: int, degree: int = 3, harmonics: int = 8,
                 **kwargs):
        super().__init__(**kwargs)
        self.kind, self.part, self.lookback, self.horizon = kind, part, lookback, horizon
        self.degree, self.harmonics = degree, harmonics
        self.basis = basis_matrix(kind, part, lookback, horizon, degree, harmonics)

    def call(self, theta):
        return keras.ops.matmul(theta, keras.ops.convert_to_tensor(self.basis, dtype=theta.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.basis.shape[1])

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind, "part": self.part, "lookback": self.lookback,
                "horizon": self.horizon, "degree": self.degree, "harmonics": self.harmonics}


def options(spec: ModelSpec) -> dict:
    """The spec's `model.nbeats` settings over the defaults, checked."""
    return validated(Options, spec.options, "nbeats")


def stack_kinds(stacks: str) -> list[tuple[str, str]]:
    """(stack name, basis kind) of each stack, in order."""
    if stacks == "interpretable":
        return [("trend", "trend"), ("seasonality", "seasonality")]
    return [(f"generic_{i}", "generic") for i in range(1, GENERIC_STACKS + 1)]


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled N-BEATS on the target channel: (batch, lookback, channels) -> (batch, horizon)."""
    opts = options(spec)
    stacks = stack_kinds(opts["stacks"])
    basis = {"lookback": lookback, "horizon": horizon, "degree": opts["degree"], "harmonics": opts["harmonics"]}

    dense_layers: dict[str, keras.layers.Layer] = {}

    def dense(name: str, units: int, activation: str | None = None) -> keras.layers.Layer:
        """The Dense layer called `name`, made on first use (a shared layer is reused by every block of its stack)."""
        if name not in dense_layers:
            dense_layers[name] = keras.layers.Dense(units, activation=activation, name=name)
        return dense_layers[name]

    def body(x):
        residual = TargetChannel(target_index, name="target_channel")(x)  # (batch, lookback)
        stack_outputs = []
        for s, (stack, kind) in enumerate(stacks):
            forecasts = []
            for b in range(1, opts["blocks"] + 1):
                block = f"{stack}_block_{b}"
                owner = block if kind == "generic" else stack  # N-BEATS-I shares weights within a stack, -G does not
                h = residual
                for j in range(1, opts["fc_layers"] + 1):
                    h = dense(f"{owner}_fc_{j}", opts["width"], "relu")(h)
                    if spec.dropout > 0:
                        h = keras.layers.Dropout(spec.dropout, name=f"{block}_dropout_{j}")(h)
                last = s == len(stacks) - 1 and b == opts["blocks"]  # the last backcast would feed nothing
                if kind == "generic":  # one learned theta (lookback + horizon), split into backcast and forecast
                    theta_forecast = theta_backcast = dense(f"{owner}_theta", lookback + horizon)(h)
                else:
                    size = basis_matrix(kind, "forecast", **basis).shape[0]
                    theta_forecast = dense(f"{owner}_theta_forecast", size)(h)
                    if not last:
                        theta_backcast = dense(f"{owner}_theta_backcast", size)(h)
                forecast = BasisExpansion(kind, "forecast", **basis, name=f"{block}_forecast")(theta_forecast)
                if not last:
                    backcast = BasisExpansion(kind, "backcast", **basis, name=f"{block}_backcast")(theta_backcast)
                    residual = keras.layers.Subtract(name=f"{block}_residual")([residual, backcast])
                forecasts.append(forecast)
            merge = keras.layers.Add if len(forecasts) > 1 else keras.layers.Identity
            stack_outputs.append(merge(name=f"{STACK_PREFIX}{stack}")(forecasts if len(forecasts) > 1 else forecasts[0]))
        return keras.layers.Add(name="forecast")(stack_outputs)

    return assemble(spec, lookback, channels, horizon, target_index, body)


def stack_names(network: keras.Model) -> list[str]:
    """Names of the network's stacks, in order (e.g. trend, seasonality)."""
    return [layer.name[len(STACK_PREFIX):] for layer in network.layers if layer.name.startswith(STACK_PREFIX)]


def stack_forecasts(network: keras.Model, windows: np.ndarray) -> dict[str, np.ndarray]:
    """Each stack's forecast contribution (n, horizon), in the forecast's (scaled) units, for windows
    (n, lookback, channels); they sum to the network's forecast. Under per-window normalisation the window's level
    (the target's shift) is counted in the first stack (the trend of interpretable stacks)."""
    names = stack_names(network)
    outputs = [network.get_layer(STACK_PREFIX + n).output for n in names]
    normalised = any(layer.name == "window_norm" for layer in network.layers)
    if normalised:
        outputs += list(network.get_layer("window_norm").output[1:])  # shift, scale: (batch, 1) each
    values = keras.Model(network.inputs, outputs).predict_on_batch(np.asarray(windows, dtype=np.float32))
    values = [np.asarray(v, dtype=float) for v in values]
    parts = values[:len(names)]
    if normalised:
        shift, scale = values[len(names):]
        parts = [p * scale + (shift if i == 0 else 0.0) for i, p in enumerate(parts)]
    return dict(zip(names, parts, strict=True))
