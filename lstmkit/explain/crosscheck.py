"""Cross-checks of Integrated Gradients against saliency, gradient x input, SHAP and permutation importance.

`model` is the explained forecaster (a neural forecaster of the contract, whose `network` the gradient methods
differentiate) or a Keras model. Permutation importance needs only forecasts: it goes through `forecaster.predict`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from lstmkit.explain.integrated_gradients import Attribution, _output_fn, _path_gradients, _predict, network_of
from lstmkit.models.base import Forecaster

METHODS = ("ig", "saliency", "gradient_x_input", "shap", "permutation")


@dataclass
class CrossCheck:
    """Per-feature and per-lag-block importance of each method, and the Spearman agreement of their rankings."""

    features: pd.DataFrame           # rows: features, columns: METHODS
    lags: pd.DataFrame               # rows: lag blocks (lag 0 = last input first), columns: METHODS
    feature_agreement: pd.DataFrame  # Spearman correlation between methods over features
    lag_agreement: pd.DataFrame      # Spearman correlation between methods over lag blocks


def _gradients(model, x: np.ndarray, target: int | str, batch_size: int) -> np.ndarray:
    """df/dx of the explained scalar per (window, lag, feature), at most batch_size inputs per call."""
    x, one = np.asarray(x, np.float32), np.ones(1)
    return _path_gradients(_output_fn(model, target), x, np.zeros_like(x), one, one, batch_size)  # the path's end: x


def saliency(model, x: np.ndarray, target: int | str = 0, batch_size: int = 4096) -> np.ndarray:
    """|df/dx| per (window, lag, feature)."""
    return np.abs(_gradients(model, x, target, batch_size))


def gradient_x_input(model, x: np.ndarray, target: int | str = 0, batch_size: int = 4096) -> np.ndarray:
    """x * df/dx per (window, lag, feature), signed (IG with a zero baseline for a linear model)."""
    return np.asarray(x, np.float32) * _gradients(model, x, target, batch_size)


def _scalar_model(model, target: int | str) -> keras.Model:
    """Functional keras.Model giving the explained scalar as shape (batch, 1), the form GradientExplainer needs."""
    out = _output_fn(model, target)
    inputs = keras.Input(shape=tuple(network_of(model).input_shape[1:]))
    return keras.Model(inputs, keras.layers.Lambda(lambda z: tf.expand_dims(out(z), -1), output_shape=(1,))(inputs))


def shap_values(model, x: np.ndarray, background: np.ndarray, target: int | str = 0, samples: int = 200,
                seed: int = 0) -> np.ndarray:
    """SHAP GradientExplainer (expected gradients) attributions of the explained scalar, (windows, lag, feature)."""
    import shap

    explainer = shap.GradientExplainer(_scalar_model(model, target), np.asarray(background, np.float32),
                                       batch_size=min(samples, 4096))
    state = np.random.get_state()  # shap reseeds numpy's global generator with rseed: leave the caller's intact
    try:
        with warnings.catch_warnings():  # shap calls the model with a one-element list of inputs
            warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
            values = explainer.shap_values(np.asarray(x, np.float32), nsamples=samples, rseed=seed)
    finally:
        np.random.set_state(state)
    return np.asarray(values)[..., 0]  # shap stacks the outputs on a last axis of length 1


def _target_values(y: np.ndarray, target: int | str) -> np.ndarray:
    """The explained column of y (windows, horizon): one horizon step or the horizon mean."""
    y = np.asarray(y)
    return y.mean(axis=1) if target == "mean" else y[:, int(target)]


def default_block(lookback: int) -> int:
    """Default lag block: about lookback / 8 lags, at least 1."""
    return max(1, round(lookback / 8))


def lag_blocks(lookback: int, block: int = 1) -> list[tuple[int | str, np.ndarray]]:
    """(label, window positions) of consecutive lag blocks from lag 0 (the last input); labels are lags or "a-b"."""
    lags = np.arange(lookback)[::-1]
    blocks = []
    for start in range(0, lookback, block):
        end = min(start + block, lookback) - 1
        label = start if block == 1 else f"{start}-{end}" if end > start else str(start)
        blocks.append((label, np.flatnonzero((lags >= start) & (lags <= end))))
    return blocks


def _explained_forecast(model, target: int | str, batch_size: int):
    """Windows (n, lookback, channels) -> the explained forecast (n,): through `predict` for a forecaster of the
    contract (any model, neural or not), through the network's call for a Keras model."""
    if isinstance(model, Forecaster):
        return lambda x: _target_values(model.predict(x), target)
    out = _output_fn(model, target)
    return lambda x: _predict(out, x, batch_size)


def permutation_importance(model, x: np.ndarray, y: np.ndarray, features: list[str], target: int | str = 0,
                           lag_block: int | None = None, repeats: int = 5, seed: int = 0,
                           batch_size: int = 4096) -> tuple[pd.Series, pd.Series]:
    """Mean increase of the target's MSE when one feature's window slice, or one lag block, is permuted across windows.

    `model`: any forecaster of the contract (only its forecasts are used) or a Keras model.
    """
    x, forecast = np.asarray(x, np.float32), _explained_forecast(model, target, batch_size)
    truth, rng = _target_values(y, target), np.random.default_rng(seed)
    base = np.mean((forecast(x) - truth) ** 2)

    def increase(index) -> float:
        scores = []
        for _ in range(repeats):
            xp = x.copy()
            xp[index] = x[rng.permutation(len(x))][index]
            scores.append(np.mean((forecast(xp) - truth) ** 2) - base)
        return float(np.mean(scores))

    by_feature = pd.Series([increase((slice(None), slice(None), j)) for j in range(x.shape[2])],
                           index=pd.Index(list(features), name="feature"), name="MSE increase")
    blocks = lag_blocks(x.shape[1], lag_block or default_block(x.shape[1]))
    by_lag = pd.Series([increase((slice(None), pos)) for _, pos in blocks],
                       index=pd.Index([label for label, _ in blocks], name="lag"), name="MSE increase")
    return by_feature, by_lag


def feature_shares(values: np.ndarray, features: list[str]) -> pd.Series:
    """Mean |attribution| per feature, normalised to sum to 1."""
    mass = np.abs(values).mean(axis=(0, 1))
    return pd.Series(mass / mass.sum(), index=pd.Index(list(features), name="feature"), name="share")


def lag_shares(values: np.ndarray, block: int = 1) -> pd.Series:
    """Mean |attribution| per lag (or lag block, summed over its lags), normalised to sum to 1; lag 0 = last input."""
    mass = np.abs(values).mean(axis=(0, 2))
    blocks = lag_blocks(values.shape[1], block)
    total = np.array([mass[pos].sum() for _, pos in blocks])
    return pd.Series(total / total.sum(), index=pd.Index([label for label, _ in blocks], name="lag"), name="share")


def agreement(rankings: dict[str, pd.Series]) -> pd.DataFrame:
    """Spearman rank correlation between the methods' importance Series (aligned on their index)."""
    return pd.DataFrame(rankings).corr(method="spearman")


def cross_check(model, x: np.ndarray, y: np.ndarray, attr: Attribution, background: np.ndarray,
                target: int | str = 0, lag_block: int | None = None, repeats: int = 5, shap_samples: int = 200,
                seed: int = 0) -> CrossCheck:
    """Importance of each feature and lag block by IG (`attr`, of the same windows x and target), saliency,
    gradient x input, SHAP (GradientExplainer against `background` training windows) and permutation importance.

    The gradient methods are attribution mass (share of mean |attribution|, summing to 1), while permutation importance
    is the increase of the target's test MSE against `y`: the two are in different units, so only the rankings are
    compared (Spearman correlation in `feature_agreement` and `lag_agreement`).
    """
    x = np.asarray(x, np.float32)
    if attr.values.shape != x.shape:
        raise ValueError(f"attributions of shape {attr.values.shape} do not belong to windows of shape {x.shape}")
    features, block = attr.feature_names, lag_block or default_block(x.shape[1])
    values = {"ig": attr.values, "saliency": saliency(model, x, target), "gradient_x_input": gradient_x_input(model, x, target),
              "shap": shap_values(model, x, background, target, shap_samples, seed)}
    perm_features, perm_lags = permutation_importance(model, x, y, features, target, block, repeats, seed)
    by_feature = {name: feature_shares(v, features) for name, v in values.items()} | {"permutation": perm_features}
    by_lag = {name: lag_shares(v, block) for name, v in values.items()} | {"permutation": perm_lags}
    return CrossCheck(pd.DataFrame(by_feature), pd.DataFrame(by_lag), agreement(by_feature), agreement(by_lag))
