"""DeepAR (Salinas, Flunkert, Gasthaus & Januschowski 2020, "DeepAR: Probabilistic forecasting with autoregressive
recurrent networks", International Journal of Forecasting 36(3)): an autoregressive LSTM whose head gives the
parameters of a likelihood at every step, fitted by negative log-likelihood, forecasting by ancestral sampling.

(batch, lookback, channels) -> (batch, horizon): the network's output is a deterministic point forecast, the *mean
path* (each step's predictive mean fed back as the next step's input), so that evaluation, Integrated Gradients and
tuning treat DeepAR like every other architecture. It is the mean of the sample paths only where the recursion is
linear; elsewhere an approximation of it (0.01 apart on the tests' sine with noise of standard deviation 0.3). Its probabilistic forecasts are sample paths from
`sample(network, windows, n_samples, seed) -> (n, n_samples, horizon)`.

Design (one recurrent network over the conditioning range, the look-back window, and the prediction range):

- Recurrent input at each step j: [target at j, the covariates at j, a flag], predicting the target at j + 1. The
  covariates (the window's other channels) are observed only over the look-back; in the prediction range they are
  held at their last observed values and the flag is 1 (0 in the look-back), the same in training and in sampling
  (our windows carry no known future inputs). The target in the prediction range is the fed-back value: the actual
  one when training (teacher forcing), a draw when sampling, the predictive mean for the point forecast.
- Head: Dense over the last LSTM layer's output. `gaussian`: loc, scale = softplus + 1e-4. `student_t`: loc, scale,
  degrees of freedom = 2 + softplus (finite variance; the fed-back loc is each step's mean).
- Scaling: the spec's per-window normalisation (`model.normalization`: `last` or `revin` via WindowNormalization,
  in place of the paper's mean-absolute scale) applies to the inputs; the likelihood is evaluated in the data's
  (scaled) units: loc * scale + shift, and the scale parameter multiplied by the window scale too.
- Training: `DeepARNetwork.compute_loss` (backend-agnostic Keras 3 hook, used by fit and evaluate) runs the
  network once over the whole look-back plus horizon with the actual targets fed back (teacher forcing; one pass of
  each LSTM layer, cuDNN-eligible) and computes the mean negative log-likelihood of every step's target from the
  second look-back step to the last horizon step (as GluonTS's DeepAR does over context and prediction ranges). The
  NLL's gradient trains the network, but the value reported as `loss`/`val_loss` is the mean path's MSE, as for
  every other architecture (early stopping, tuning, model selection and ensembles compare val_loss across
  architectures; an NLL is on another scale and can be negative); the NLL is reported as `nll`/`val_nll`.
- Sampling: the look-back pass runs once per window, its LSTM states are repeated for the samples, then each
  horizon step runs the LSTM cells once for all windows x samples and draws from the step's distribution (NumPy
  generator seeded by `seed`), the draw fed back as the next input.

The NLL is written in keras.ops (no TensorFlow Probability: its layers need Keras 2); the log-gamma function of the
Student-t density is a shifted Stirling series (keras.ops has none).
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
from keras import ops

from lstmkit.config.types import Choice, Int, Section, opt
from lstmkit.core.errors import ForecasterError
from lstmkit.models.neural.layers import OPTIMIZER_CLASSES, WindowDenormalization, WindowNormalization
from lstmkit.models.neural.options import validated
from lstmkit.models.neural.spec import ModelSpec

TAGS: dict[str, bool] = {"samples": True}
LIKELIHOODS = ("gaussian", "student_t")


class Options(Section):
    """`model.deepar`: the likelihood of DeepAR's head and the sample paths of its intervals."""

    likelihood: Choice(LIKELIHOODS) = opt("gaussian",
        "Likelihood of DeepAR's head (Salinas et al. 2020), fitted by negative log-likelihood under teacher forcing: `gaussian` or `student_t` (heavier tails; its degrees of freedom, above 2, are learned per step). DeepAR's reported loss/val_loss is its point forecast's MSE like every architecture's (the NLL is `nll`/`val_nll` in the training history).")
    samples: Int = opt(200,
        "Sample paths drawn per window by ancestral sampling (each step's draw fed back as the next input) when DeepAR's intervals are made (uncertainty.method `deepar`). Its point forecast needs no sampling: the mean path (each step's predictive mean fed back).", ge=1)
CORE_LAYER, NORM_LAYER = "deepar", "window_norm"
MIN_SCALE = 1e-4  # floor of the scale parameter (normalised units)
MAX_SAMPLE_ROWS = 65536  # windows x samples run through the cells at once
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _likelihood(spec: ModelSpec) -> str:
    """The spec's `deepar.likelihood`, checked."""
    return validated(Options, spec.options, "deepar")["likelihood"]


def log_gamma(x):
    """log Gamma(x) for x > 0 (elementwise, keras.ops): Stirling's series at x + 6, shifted back (error < 1e-10)."""
    shift = ops.log(x * (x + 1) * (x + 2) * (x + 3) * (x + 4) * (x + 5))
    z = x + 6.0
    zi = 1.0 / z
    zi2 = zi * zi
    series = zi * (1.0 / 12 - zi2 * (1.0 / 360 - zi2 * (1.0 / 1260 - zi2 / 1680)))
    return (z - 0.5) * ops.log(z) - z + _HALF_LOG_2PI + series - shift


def negative_log_likelihood(y, loc, scale, df=None):
    """Elementwise -log p(y) under Normal(loc, scale), or Student-t(df, loc, scale) when df is given (keras.ops;
    any broadcastable shapes, same units for y, loc and scale)."""
    u = (y - loc) / scale
    if df is None:
        return 0.5 * ops.square(u) + ops.log(scale) + _HALF_LOG_2PI
    return (log_gamma(df / 2) - log_gamma((df + 1) / 2) + 0.5 * ops.log(df * math.pi) + ops.log(scale)
            + (df + 1) / 2 * ops.log1p(ops.square(u) / df))


@keras.saving.register_keras_serializable(package="lstmkit")
class DeepARCore(keras.layers.Layer):
    """DeepAR's recurrent network on normalised windows: (batch, lookback, channels) -> mean path (batch, horizon).

    Also gives the teacher-forced distribution parameters (`teacher_forced`) and runs single steps (`step`) for
    sampling. `layers` LSTM layers of `units` (default activations, no recurrent dropout: cuDNN-eligible) with
    dropout after each, and a Dense head of 2 (gaussian) or 3 (student_t) raw parameters.
    """

    def __init__(self, horizon: int, target_index: int = -1, layers: int = 1, units: int = 64, dropout: float = 0.0,
                 likelihood: str = "gaussian", **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.target_index, self.layers_count = int(horizon), int(target_index), int(layers)
        self.units, self.dropout, self.likelihood = int(units), float(dropout), likelihood
        self.lstms = [keras.layers.LSTM(self.units, return_sequences=True, return_state=True, name=f"lstm_{i + 1}")
                      for i in range(self.layers_count)]
        self.drops = [keras.layers.Dropout(self.dropout, name=f"dropout_{i + 1}") for i in range(self.layers_count)]
        self.head = keras.layers.Dense(3 if likelihood == "student_t" else 2, name="likelihood")

    def build(self, input_shape):
        channels = int(input_shape[-1])
        target = self.target_index % channels
        self.covariates = [i for i in range(channels) if i != target]
        self.target = target
        shape = (None, None, channels + 1)  # target, covariates, flag
        for lstm in self.lstms:
            lstm.build(shape)
            shape = (None, None, self.units)
        self.head.build(shape)

    # ------------------------------------------------------------ pieces

    def parameters(self, raw) -> tuple:
        """(loc, scale, df or None) in normalised units from the head's raw output (..., 2 or 3)."""
        loc, scale = raw[..., 0], ops.softplus(raw[..., 1]) + MIN_SCALE
        df = 2.0 + ops.softplus(raw[..., 2]) if self.likelihood == "student_t" else None
        return loc, scale, df

    def sequence(self, x, future=None):
        """Recurrent inputs (batch, lookback [+ horizon - 1], channels + 1) from normalised windows x and, for the
        prediction range, the fed-back target values `future` (batch, horizon - 1)."""
        z = x[:, :, self.target:self.target + 1]
        cov = ops.take(x, self.covariates, axis=2) if self.covariates else z[:, :, :0]
        past = ops.concatenate([z, cov, ops.zeros_like(z)], axis=-1)
        if future is None or self.horizon == 1:
            return past
        k = self.horizon - 1
        held = ops.repeat(cov[:, -1:], k, axis=1)
        future = ops.expand_dims(ops.cast(future, x.dtype), -1)
        return ops.concatenate([past, ops.concatenate([future, held, ops.ones_like(future)], axis=-1)], axis=1)

    def run(self, seq, training=None) -> tuple:
        """Raw head outputs (batch, steps, params) over a whole sequence, and each layer's final [h, c] states."""
        h, states = seq, []
        for lstm, drop in zip(self.lstms, self.drops):
            h, state_h, state_c = lstm(h, training=training)
            states.append([state_h, state_c])
            if self.dropout > 0:
                h = drop(h, training=training)
        return self.head(h), states

    def step(self, z, last_cov, states) -> tuple:
        """One prediction-range step (inference): fed-back target z (rows,), held covariates (rows, channels - 1),
        states per layer -> raw head output (rows, params), new states."""
        z = ops.expand_dims(z, -1)
        h = ops.concatenate([z, last_cov, ops.ones_like(z)], axis=-1)
        new = []
        for lstm, state in zip(self.lstms, states):
            h, state = lstm.cell(h, state, training=False)
            new.append(list(state))
        return self.head(h), new

    def teacher_forced(self, x, y, training=None) -> tuple:
        """(loc, scale, df or None), each (batch, lookback + horizon - 1), normalised units: the distributions of
        the targets at steps 2 .. lookback + horizon given the actual past (x normalised windows, y normalised
        future (batch, horizon))."""
        raw, _ = self.run(self.sequence(x, y[:, :-1]), training=training)
        return self.parameters(raw)

    def call(self, x, training=None):
        raw, states = self.run(self.sequence(x), training=training)
        loc = self.parameters(raw[:, -1])[0]
        last_cov = ops.take(x[:, -1], self.covariates, axis=1) if self.covariates else x[:, -1, :0]
        path = [loc]
        for _ in range(self.horizon - 1):
            raw, states = self.step(loc, last_cov, states)
            loc = self.parameters(raw)[0]
            path.append(loc)
        return ops.stack(path, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon)

    def get_config(self) -> dict:
        return {**super().get_config(), "horizon": self.horizon, "target_index": self.target_index,
                "layers": self.layers_count, "units": self.units, "dropout": self.dropout,
                "likelihood": self.likelihood}


@keras.saving.register_keras_serializable(package="lstmkit")
class DeepARNetwork(keras.Model):
    """The functional DeepAR network (window -> mean path) trained by the teacher-forced negative log-likelihood.

    The value it reports as `loss` (and `val_loss`) is the mean path's MSE, the loss every other architecture reports,
    while the gradient is the NLL's (`nll + stop_gradient(mse - nll)`); the NLL itself is the metric `nll`
    (`val_nll`). So early stopping, tuning, model selection and top-k ensembles compare like with like (an NLL can
    be negative and is on another scale than an MSE).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nll_tracker = keras.metrics.Mean(name="nll")

    def normalise(self, x) -> tuple:
        """Normalised windows, the target's shift and scale (batch, 1) (0 and 1 without per-window normalisation)."""
        try:
            return self.get_layer(NORM_LAYER)(x)
        except ValueError:
            x = ops.convert_to_tensor(x)
            return x, ops.zeros_like(x[:, :1, 0]), ops.ones_like(x[:, :1, 0])

    def distributions(self, x, y, training=None) -> tuple:
        """(loc, scale, df or None), each (batch, lookback + horizon - 1) in the data's units: teacher-forced
        distributions of the targets at steps 2 .. lookback + horizon; also returns those targets."""
        core = self.get_layer(CORE_LAYER)
        xn, shift, scale = self.normalise(x)
        y = ops.cast(y, xn.dtype)
        loc, sigma, df = core.teacher_forced(xn, (y - shift) / scale, training=training)
        targets = ops.concatenate([ops.convert_to_tensor(x)[:, 1:, core.target], y], axis=1)
        return (loc * scale + shift, sigma * scale, df), targets

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The NLL's gradient with the mean path's MSE as value: the NLL (data units, every target from the second
        look-back step to the horizon's end under teacher forcing) goes to the `nll` metric."""
        (loc, scale, df), targets = self.distributions(x, y, training=training)
        nll = ops.mean(negative_log_likelihood(targets, loc, scale, df))
        self.nll_tracker.update_state(nll)
        mse = ops.mean(ops.square(ops.cast(y, y_pred.dtype) - y_pred))
        loss = nll + ops.stop_gradient(mse - nll)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss


def build(spec: ModelSpec, lookback: int, channels: int, horizon: int, target_index: int = -1) -> keras.Model:
    """Uncompiled DeepAR: (batch, lookback, channels) -> mean path (batch, horizon), named `deepar_forecaster`."""
    if spec.quantiles:
        raise ForecasterError("model.quantiles: DeepAR has a likelihood head of its own (model.deepar.likelihood); "
                              "its quantiles come from its sample paths (uncertainty.method `deepar`), not from a "
                              "quantile head")
    likelihood = _likelihood(spec)
    inputs = keras.Input(shape=(lookback, channels), name="window")
    x = inputs
    if spec.normalization != "none":
        x, shift, scale = WindowNormalization(spec.normalization, target_index, name=NORM_LAYER)(x)
    out = DeepARCore(horizon, target_index, spec.layers, spec.units, spec.dropout, likelihood, name=CORE_LAYER)(x)
    if spec.normalization != "none":
        out = WindowDenormalization(name="denorm")([out, shift, scale])
    return DeepARNetwork(inputs, out, name="deepar_forecaster")


def compile_network(model: keras.Model, spec: ModelSpec) -> keras.Model:
    """Compile with the spec's optimiser and learning rate (no Keras loss: DeepARNetwork.compute_loss; metric: MAE)."""
    model.compile(optimizer=OPTIMIZER_CLASSES[spec.optimizer](learning_rate=spec.learning_rate), loss=None,
                  metrics=["mae"])
    return model


def predictive(network: keras.Model, windows: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """One-step-ahead distributions over the horizon given the actual past: `loc`, `scale` (and `df` for Student-t),
    each (n, horizon), scaled units, from windows (n, lookback, channels) and their actual futures y (n, horizon)."""
    horizon = np.shape(y)[1]
    (loc, scale, df), _ = network.distributions(np.asarray(windows, np.float32), np.asarray(y, np.float32))
    out = {"loc": loc, "scale": scale} | ({} if df is None else {"df": df})
    return {k: np.asarray(v, dtype=float)[:, -horizon:] for k, v in out.items()}


def _draw(rng: np.random.Generator, loc: np.ndarray, scale: np.ndarray, df: np.ndarray | None) -> np.ndarray:
    """One draw per row from Normal(loc, scale) or Student-t(df, loc, scale), float32 (rows,)."""
    noise = rng.standard_normal(loc.shape) if df is None else rng.standard_t(df)
    return (loc + scale * noise).astype(np.float32)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(core: DeepARCore) -> tuple:
    """The core's look-back pass and prediction step for sampling, as tf.functions on the TensorFlow backend (about
    twice as fast as eager calls), cached per layer; plain methods on other backends."""
    if core not in _COMPILED:
        def run(seq):
            return core.run(seq, training=False)

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            _COMPILED[core] = (tf.function(run, reduce_retracing=True),
                               tf.function(core.step, reduce_retracing=True))
        else:
            _COMPILED[core] = (run, core.step)
    return _COMPILED[core]


def sample(network: keras.Model, windows: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
    """Sample paths (n, n_samples, horizon) in scaled units by ancestral sampling from windows (n, lookback,
    channels), scaled: each step's draw is fed back as the next step's target. The same seed gives the same paths
    (for the same windows and n_samples: windows are taken in chunks of MAX_SAMPLE_ROWS // n_samples)."""
    core = network.get_layer(CORE_LAYER)
    run, step = _compiled(core)
    windows = np.asarray(windows, dtype=np.float32)
    n, horizon = len(windows), core.horizon
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_samples, horizon))
    chunk = max(1, MAX_SAMPLE_ROWS // n_samples)
    for a in range(0, n, chunk):
        xn, shift, scale = (np.asarray(v) for v in network.normalise(windows[a:a + chunk]))
        raw, states = run(core.sequence(ops.convert_to_tensor(xn)))
        states = [[ops.repeat(s, n_samples, axis=0) for s in layer] for layer in states]
        last_cov = np.repeat(xn[:, -1, core.covariates], n_samples, axis=0)
        raw = np.repeat(np.asarray(raw[:, -1]), n_samples, axis=0)
        paths = np.empty((len(raw), horizon), dtype=np.float32)
        for h in range(horizon):
            if h:
                raw, states = step(ops.convert_to_tensor(paths[:, h - 1]), ops.convert_to_tensor(last_cov), states)
            loc, sigma, df = (None if v is None else np.asarray(v, dtype=float) for v in core.parameters(raw))
            paths[:, h] = _draw(rng, loc, sigma, df)
        paths = paths.reshape(-1, n_samples, horizon)
        out[a:a + len(paths)] = paths * scale[:, None, :] + shift[:, None, :]
    return out
