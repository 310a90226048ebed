"""Explainability stage: Integrated Gradients over (time step, feature) of any neural forecaster or Keras model.

Every function that differentiates a model takes either a forecaster of the contract (`lstmkit.models`) with the
`neural` tag, whose `network` (the Keras model) is differentiated, or a Keras model itself."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from lstmkit.core import progress
from lstmkit.core.errors import ForecasterError

METHODS = ("midpoint", "left", "right", "trapezoid", "gausslegendre")
BASELINES = ("zeros", "mean", "last", "noise")


@dataclass
class Attribution:
    """IG attributions of a batch of windows, labelled by time lag and feature, with the completeness check."""

    values: np.ndarray        # (windows, lookback, features)
    prediction: np.ndarray    # f(x) for the explained output, (windows,)
    baseline_prediction: np.ndarray  # f(baseline) (mean over baselines for `noise`), (windows,)
    steps: np.ndarray | None = None  # gradient evaluations used per window (per baseline)
    features: list[str] | None = None
    method: str = "midpoint"
    baseline: str = "zeros"

    @property
    def delta(self) -> np.ndarray:
        """f(x) - f(baseline): what the attributions of each window should add up to."""
        return self.prediction - self.baseline_prediction

    @property
    def completeness_gap(self) -> np.ndarray:
        """|sum of attributions - (f(x) - f(baseline))| per window."""
        return np.abs(self.values.sum(axis=(1, 2)) - self.delta)

    def relative_gap(self) -> float:
        """Total completeness gap as a fraction of the total |f(x) - f(baseline)|."""
        return float(self.completeness_gap.sum() / max(np.abs(self.delta).sum(), 1e-12))

    @property
    def feature_names(self) -> list[str]:
        """Feature labels (f0, f1, ... when none were given)."""
        return list(self.features) if self.features else [f"f{i}" for i in range(self.values.shape[2])]

    @property
    def lags(self) -> np.ndarray:
        """Time lag of each window position before the window's last input (the last input is lag 0)."""
        return lag_labels(self.values.shape[1], 0)

    def subset(self, rows: np.ndarray) -> Attribution:
        """The attributions of some of the windows."""
        return Attribution(self.values[rows], self.prediction[rows], self.baseline_prediction[rows],
                           None if self.steps is None else self.steps[rows], self.features, self.method, self.baseline)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (window, lag, feature) with its attribution."""
        n, length, c = self.values.shape
        index = pd.MultiIndex.from_product([range(n), self.lags, self.feature_names], names=["window", "lag", "feature"])
        return pd.DataFrame({"attribution": self.values.reshape(-1)}, index=index)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on the straight path (0 = baseline, 1 = input) and their weights for a rule with `steps` gradient evaluations."""
    if method not in METHODS:
        raise ValueError(f"integration method {method!r} is not one of {', '.join(METHODS)}")
    if steps < (2 if method == "trapezoid" else 1):
        raise ValueError(f"{method} integration needs at least {2 if method == 'trapezoid' else 1} steps, got {steps}")
    k = np.arange(steps, dtype=np.float64)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "trapezoid":
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return k / (steps - 1), weights
    offset = {"left": 0.0, "right": 1.0, "midpoint": 0.5}[method]
    return (k + offset) / steps, np.full(steps, 1.0 / steps)


def network_of(model):
    """The Keras network that IG differentiates: a neural forecaster's `network`, or a Keras model itself."""
    if isinstance(model, keras.Model):
        return model
    network = getattr(model, "network", None)
    if network is None:
        name = getattr(model, "name", type(model).__name__)
        raise ForecasterError(f"{name}: gradient attributions need a neural forecaster (one with a network to "
                              "differentiate, tag `neural`), or a Keras model; this forecaster has none")
    return network


def window_normalised(forecaster) -> bool:
    """Whether the forecaster normalises each window by its own statistics (model.normalization `last` or `revin`)."""
    return getattr(getattr(forecaster, "spec", None), "normalization", "none") != "none"


def _output_fn(model, target: int | str):
    """The explained scalar per row: one horizon step (0-based index) or the mean over the horizon."""
    model = network_of(model)
    if target == "mean":
        return lambda z: tf.reduce_mean(model(z, training=False), axis=1)
    if not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be a horizon index (0-based) or 'mean', got {target!r}")
    return lambda z: model(z, training=False)[:, int(target)]


def _predict(out, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The explained output for every row of x, in batches."""
    return np.concatenate([out(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def _path_gradients(out, x: np.ndarray, base: np.ndarray, alphas: np.ndarray, weights: np.ndarray,
                    batch_size: int, done=None) -> np.ndarray:
    """Sum over the rule's points of weight x gradient on the path, per window; at most batch_size inputs per call.

    `done(windows)`, if given, is called after each call with the number of leading windows whose sum is complete.
    """
    n, m = len(x), len(alphas)
    total = np.zeros_like(x)
    alphas32, weights32 = alphas.astype(np.float32), weights.astype(np.float32)
    for start in range(0, n * m, batch_size):
        pair = np.arange(start, min(n * m, start + batch_size))
        w, k = pair // m, pair % m
        z = tf.constant(base[w] + alphas32[k, None, None] * (x[w] - base[w]))
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = tf.reduce_sum(out(z))  # rows are independent: the gradient of the sum is each row's own gradient
        g = tape.gradient(y, z) * weights32[k, None, None]
        first = w[0]
        total[first:w[-1] + 1] += tf.math.segment_sum(g, w - first).numpy()
        if done is not None:
            done(int(w[-1]) + int(k[-1] == m - 1))
    return total


def baselines_for(kind: str | np.ndarray, x: np.ndarray, mean: np.ndarray | None = None, samples: int = 8,
                  noise_std: float = 1.0, seed: int = 0) -> np.ndarray:
    """Baseline inputs, shape (baselines, windows, lookback, features).

    `zeros`: all zeros, i.e. the training mean under z-scoring; `mean`: each feature's training mean (`mean`, in the
    model's input units); `last`: a flat line at each window's last value; `noise`: `samples` copies of the window with
    Gaussian noise of `noise_std` added (attributions are averaged over them); an array: that baseline.
    """
    if not isinstance(kind, str):
        return np.broadcast_to(np.asarray(kind, np.float32), x.shape)[None]
    if kind == "zeros":
        return np.zeros_like(x)[None]
    if kind == "mean":
        if mean is None:
            raise ValueError("baseline 'mean' needs the training mean of each feature (mean=...)")
        return np.broadcast_to(np.asarray(mean, np.float32).reshape(1, 1, -1), x.shape)[None]
    if kind == "last":
        return np.broadcast_to(x[:, -1:, :], x.shape)[None]
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return (x[None] + rng.normal(0.0, noise_std, size=(samples, *x.shape))).astype(np.float32)
    raise ValueError(f"baseline {kind!r} is not one of {', '.join(BASELINES)} or an array")


def integrated_gradients(model, x: np.ndarray, baseline: str | np.ndarray | None = "zeros", steps: int | str = 64,
                         method: str = "midpoint", target: int | str = 0, batch_size: int = 4096,
                         tolerance: float = 0.01, max_steps: int = 1024, mean: np.ndarray | None = None,
                         samples: int = 8, noise_std: float = 1.0, seed: int = 0,
                         features: list[str] | None = None) -> Attribution:
    """Integrated Gradients of one output of a neural forecaster or Keras model with (batch, lag, feature) input, for
    many windows at once.

    `steps="auto"` starts at 16 steps and doubles them for each chunk of windows until the chunk's completeness gap is
    below `tolerance` x |f(x) - f(baseline)| (or `max_steps` is reached). At most `batch_size` interpolated inputs are
    differentiated per call, which bounds memory whatever the number of windows or steps.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (windows, lag, feature), got {x.shape}")
    auto = steps == "auto"
    if not auto and (not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"steps must be a positive integer or 'auto', got {steps!r}")
    out = _output_fn(model, target)
    bases = baselines_for("zeros" if baseline is None else baseline, x, mean, samples, noise_std, seed)
    prediction = _predict(out, x, batch_size)
    values = np.zeros_like(x)
    base_pred = np.zeros(len(x))
    used = np.zeros(len(x), dtype=int)
    chunk = max(1, batch_size // 16)  # windows per auto-steps decision
    shown = [0]  # window-baseline pairs done, for the live progress (a retried auto-steps chunk does not go back)

    def tick(pairs: int) -> None:
        if pairs > shown[0]:
            shown[0] = pairs
            progress.report("explain", windows=pairs // len(bases), total=len(x))

    for j, b in enumerate(bases):
        b = np.ascontiguousarray(b, dtype=np.float32)
        fb = _predict(out, b, batch_size)
        base_pred += fb / len(bases)
        span = chunk if auto else len(x)
        for i in range(0, len(x), span):
            xs, bs = x[i:i + span], b[i:i + span]
            delta = prediction[i:i + span] - fb[i:i + span]
            m = min(16, max_steps) if auto else int(steps)
            while True:
                alphas, weights = quadrature(method, m)
                attr = (xs - bs) * _path_gradients(out, xs, bs, alphas, weights, batch_size,
                                                   done=lambda n, i=i, j=j: tick(j * len(x) + i + n))
                gap = np.abs(attr.sum(axis=(1, 2)) - delta).sum() / max(np.abs(delta).sum(), 1e-12)
                if not auto or gap <= tolerance or m >= max_steps:
                    break
                m = min(2 * m, max_steps)
            values[i:i + len(xs)] += attr / len(bases)
            used[i:i + len(xs)] = m
    return Attribution(values, prediction, base_pred, steps=used, features=features, method=method,
                       baseline=baseline if isinstance(baseline, str) else "array" if baseline is not None else "zeros")


def integrated_gradients_loop(model, x: np.ndarray, steps: int = 64, target: int = 0) -> np.ndarray:
    """Reference IG (zero baseline, midpoint rule) with one gradient call per window and step (slow; for checks)."""
    output = _output_fn(model, target)
    out = np.zeros_like(x, dtype=np.float32)
    for w in range(len(x)):
        xw = tf.constant(x[w:w + 1], tf.float32)
        total = tf.zeros_like(xw)
        for k in range(steps):
            z = ((k + 0.5) / steps) * xw
            with tf.GradientTape() as tape:
                tape.watch(z)
                y = output(z)
            total += tape.gradient(y, z)
        out[w] = (xw * total / steps).numpy()[0]
    return out


def sample_windows(n_windows: int, k: int) -> np.ndarray:
    """k window positions spread evenly over n_windows (all of them when k >= n)."""
    if k >= n_windows:
        return np.arange(n_windows)
    return np.unique(np.linspace(0, n_windows - 1, k).round().astype(int))


def lag_labels(lookback: int, horizon_step: int) -> np.ndarray:
    """For each window position, the lag between that input and the explained target (position -1 -> horizon_step)."""
    return np.arange(lookback, 0, -1) - 1 + horizon_step


def importance_heatmap(attr: Attribution, columns: list[str], horizon_step: int) -> pd.DataFrame:
    """Mean |attribution| per (lag, feature) over the explained windows; rows ordered by lag."""
    mean_abs = np.abs(attr.values).mean(axis=0)
    df = pd.DataFrame(mean_abs, columns=columns, index=pd.Index(lag_labels(mean_abs.shape[0], horizon_step), name="lag"))
    return df.sort_index()


def feature_importance(heatmap: pd.DataFrame) -> pd.Series:
    """Share of the total attribution mass carried by each feature."""
    total = heatmap.sum()
    return (total / total.sum()).sort_values(ascending=False).rename("share of |attribution|")


def lag_importance(heatmap: pd.DataFrame) -> pd.Series:
    """Share of the total attribution mass at each lag (all features together)."""
    total = heatmap.sum(axis=1)
    return (total / total.sum()).rename("share of |attribution|")


def ground_truth_scores(heatmap: pd.DataFrame, truth, target: str) -> pd.DataFrame:
    """How attribution lands on the generator's planted (feature, lag) pairs, among all exogenous (feature, lag) cells.

    One row per planted pair: the lag IG finds most important for that feature and the runner-up lag, the pair's rank
    among all cells of the exogenous inputs (1 = most attribution) and among its own feature's lags, its share of their
    attribution mass, and the uniform share for comparison.
    """
    cells = heatmap.drop(columns=[target], errors="ignore")
    flat = cells.stack()  # (lag, feature) -> mean |attribution|
    ranks = flat.rank(ascending=False, method="min").astype(int)
    total = float(flat.sum())
    rows = {}
    for feature, lag in truth.driving_pairs():
        if feature not in cells.columns or lag not in cells.index:
            continue
        column = cells[feature]
        order = column.sort_values(ascending=False, kind="stable").index
        rows[f"{feature} @ lag {lag}"] = {
            "feature": feature, "lag": lag, "top lag": int(order[0]), "next lag": int(order[1]) if len(order) > 1 else None,
            "rank": int(ranks.loc[(lag, feature)]),
            "rank within feature": int((column > column.loc[lag]).sum()) + 1,
            "share": float(flat.loc[(lag, feature)] / total), "uniform": 1.0 / len(flat)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def completeness_table(attr: Attribution) -> pd.DataFrame:
    """Summary of the per-window completeness check."""
    gap, delta = attr.completeness_gap, np.abs(attr.delta)
    rel = gap / np.maximum(delta, 1e-12)
    return pd.DataFrame({"value": [len(gap), float(delta.mean()), float(gap.mean()), float(gap.max()),
                                   float(np.median(rel)), attr.relative_gap()]},
                        index=pd.Index(["windows explained", "mean |f(x) - f(baseline)|", "mean gap", "largest gap",
                                        "median relative gap", "total gap / total |f(x) - f(baseline)|"], name="check"))
