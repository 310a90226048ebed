"""Cross-check methods: exact values on a linear model, permutation importance, shares, agreement, the full table."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lstmkit.core.errors import ForecasterError
from lstmkit.explain.crosscheck import (
    METHODS,
    agreement,
    cross_check,
    feature_shares,
    gradient_x_input,
    lag_shares,
    permutation_importance,
    saliency,
    shap_values,
)
from lstmkit.explain.integrated_gradients import integrated_gradients
from lstmkit.models.base import Forecaster
from lstmkit.models.neural.forecaster import build_network
from lstmkit.models.neural.spec import ModelSpec

LOOKBACK, CHANNELS, HORIZON = 6, 3, 3
FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def windows():
    return np.random.default_rng(0).normal(size=(64, LOOKBACK, CHANNELS)).astype(np.float32)


@pytest.fixture(scope="module")
def linear_model():
    """Dense model on the flattened window: a heavy, c light, b and lags 0-1 (the last two inputs) zero weight."""
    w = np.random.default_rng(1).normal(size=(LOOKBACK, CHANNELS, HORIZON)).astype(np.float32)
    w[:, 0] *= 4.0
    w[:, 2] *= 0.25
    w[:, 1] = 0.0
    w[-2:] = 0.0
    model = keras.Sequential([keras.Input((LOOKBACK, CHANNELS)), keras.layers.Flatten(), keras.layers.Dense(HORIZON)])
    model.layers[-1].set_weights([w.reshape(-1, HORIZON), np.array([0.5, -1.0, 2.0], np.float32)])
    return model, w


def _weights(w, target):
    return w.mean(axis=2) if target == "mean" else w[:, :, target]


@pytest.mark.parametrize("target", [0, 2, "mean"])
def test_gradient_methods_on_a_linear_model(linear_model, windows, target):
    model, w = linear_model
    x, wt = windows[:7], _weights(w, target)
    np.testing.assert_allclose(saliency(model, x, target, batch_size=3), np.broadcast_to(np.abs(wt), x.shape),
                               rtol=1e-5, atol=1e-6)
    gxi = gradient_x_input(model, x, target, batch_size=3)
    np.testing.assert_allclose(gxi, x * wt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gxi, integrated_gradients(model, x, steps=4, target=target).values, rtol=1e-4, atol=1e-5)


def test_shap_of_a_linear_model_is_input_minus_background_mean_times_weight(linear_model, windows):
    model, w = linear_model
    background = np.random.default_rng(2).normal(0.5, 0.3, size=(16, LOOKBACK, CHANNELS)).astype(np.float32)
    x = windows[:4]
    state = np.random.get_state()
    values = shap_values(model, x, background, target=1, samples=2000, seed=3)
    assert values.shape == x.shape
    np.testing.assert_allclose(values, (x - background.mean(axis=0)) * w[:, :, 1], atol=0.1)
    np.testing.assert_array_equal(values, shap_values(model, x, background, target=1, samples=2000, seed=3))
    assert not np.array_equal(values, shap_values(model, x, background, target=1, samples=2000, seed=4))
    assert np.array_equal(np.random.get_state()[1], state[1])  # the caller's global numpy generator is untouched


def test_permutation_importance_finds_zero_and_heavy_weights(linear_model, windows):
    model, w = linear_model
    y = keras.ops.convert_to_numpy(model(windows)) + np.random.default_rng(5).normal(0, 0.1, (len(windows), HORIZON))
    by_feature, by_lag = permutation_importance(model, windows, y, FEATURES, target=0, lag_block=2, repeats=3)
    assert list(by_feature.index) == FEATURES and list(by_lag.index) == ["0-1", "2-3", "4-5"]
    assert abs(by_feature["b"]) < 1e-6 and abs(by_lag["0-1"]) < 1e-6
    assert by_feature["a"] > 10 * by_feature["c"] > 0
    assert by_lag["2-3"] > 1 and by_lag["4-5"] > 1
    again = permutation_importance(model, windows, y, FEATURES, target=0, lag_block=2, repeats=3)
    pd.testing.assert_series_equal(by_feature, again[0])
    mean_feature, _ = permutation_importance(model, windows, y, FEATURES, target="mean", lag_block=2, repeats=3)
    assert abs(mean_feature["b"]) < 1e-6 and mean_feature["a"] > 1


def test_shares_sum_to_one_with_lag_labels():
    values = np.zeros((2, 5, 2), np.float32)
    values[:, -1, 0] = 3.0   # lag 0, feature x
    values[:, 0, 1] = -1.0   # lag 4, feature y
    features = feature_shares(values, ["x", "y"])
    np.testing.assert_allclose(features.to_numpy(), [0.75, 0.25])
    assert list(features.index) == ["x", "y"]
    lags = lag_shares(values)
    assert list(lags.index) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(lags.to_numpy(), [0.75, 0, 0, 0, 0.25])
    blocks = lag_shares(values, block=2)
    assert list(blocks.index) == ["0-1", "2-3", "4"]
    np.testing.assert_allclose(blocks.to_numpy(), [0.75, 0, 0.25])


def test_agreement_of_identical_and_reversed_rankings():
    up = pd.Series([0.1, 0.2, 0.3, 0.4], index=list("pqrs"))
    table = agreement({"m1": up, "m2": up * 10, "m3": pd.Series(up.to_numpy()[::-1], index=up.index)})
    np.testing.assert_allclose(table.loc["m1", "m2"], 1.0)
    np.testing.assert_allclose(table.loc["m1", "m3"], -1.0)


def test_cross_check_on_a_tiny_lstm(windows):
    keras.utils.set_random_seed(3)
    model = build_network(ModelSpec(units=8, dropout=0.0), LOOKBACK, CHANNELS, HORIZON)
    x, background = windows[:10], windows[32:48]
    y = np.random.default_rng(6).normal(size=(len(x), HORIZON))
    attr = integrated_gradients(model, x, steps=16, target="mean", features=FEATURES)

    def run():
        return cross_check(model, x, y, attr, background, target="mean", lag_block=2, repeats=2, shap_samples=32)

    first, second = run(), run()
    assert list(first.features.columns) == list(METHODS) and list(first.lags.columns) == list(METHODS)
    assert list(first.features.index) == FEATURES and list(first.lags.index) == ["0-1", "2-3", "4-5"]
    for table in (first.feature_agreement, first.lag_agreement):
        assert list(table.index) == list(METHODS) == list(table.columns)
    shares = first.features.drop(columns="permutation")
    np.testing.assert_allclose(shares.sum().to_numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(first.lags.drop(columns="permutation").sum().to_numpy(), 1.0, rtol=1e-5)
    pd.testing.assert_series_equal(first.features["ig"], feature_shares(attr.values, FEATURES), check_names=False)
    pd.testing.assert_frame_equal(first.features, second.features)
    pd.testing.assert_frame_equal(first.lags, second.lags)
    with pytest.raises(ValueError, match="do not belong"):
        cross_check(model, x[:3], y[:3], attr, background)


def test_agreement_summary_names_the_least_agreeing_method():
    from lstmkit.report.explainability import agreement_summary

    m = pd.DataFrame({"ig": [1.0, 0.9, 0.2], "saliency": [0.9, 1.0, 0.3], "shap": [0.2, 0.3, 1.0]},
                     index=["ig", "saliency", "shap"])
    text = agreement_summary(m, "lag block")
    assert "0.20 to 0.90" in text and "least with **shap** (0.20)" in text and "local slopes" in text
    assert "normalises each window" in agreement_summary(m, "lag block", window_normalised=True)
    assert "normalises" not in text and "local slopes" not in agreement_summary(m.clip(lower=0.6), "lag block")
    assert "no ranking" in agreement_summary(pd.DataFrame({"ig": [np.nan]}, index=["ig"]).reindex(["ig", "shap"]), "feature")


class Wrapped(Forecaster):
    """A forecaster of the contract around a Keras network (neural tag), or without one (network=None)."""

    name = "wrapped"
    tags = {"neural": True}

    def __init__(self, network=None, predict=None):
        self.network, self.forecast = network, predict or (lambda x: np.asarray(network(x)))
        self.lookback_, self.horizon_, self.channels_ = LOOKBACK, HORIZON, CHANNELS

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        return self.forecast(windows)


def test_the_methods_take_a_forecaster_of_the_contract(linear_model, windows):
    model, w = linear_model
    forecaster, x = Wrapped(model), windows[:8]
    y = np.random.default_rng(7).normal(size=(len(x), HORIZON))
    np.testing.assert_allclose(saliency(forecaster, x, 1), saliency(model, x, 1), rtol=1e-6)
    np.testing.assert_allclose(gradient_x_input(forecaster, x, "mean"), gradient_x_input(model, x, "mean"), rtol=1e-6)
    for a, b in zip(permutation_importance(forecaster, x, y, FEATURES, target=0, lag_block=2, repeats=2),
                    permutation_importance(model, x, y, FEATURES, target=0, lag_block=2, repeats=2)):
        pd.testing.assert_series_equal(a, b, rtol=1e-5)
    # permutation importance needs only forecasts: a forecaster without a network has it, the gradient methods do not
    last = Wrapped(predict=lambda v: np.repeat(v[:, -1:, 0], HORIZON, axis=1))  # repeats channel a's last value
    by_feature, by_lag = permutation_importance(last, x, y, FEATURES, target=0, lag_block=2, repeats=2)
    assert by_feature["b"] == 0 == by_feature["c"] and by_lag["2-3"] == 0 == by_lag["4-5"] and by_feature["a"] != 0
    with pytest.raises(ForecasterError, match="wrapped: gradient attributions need a neural forecaster"):
        saliency(last, x)
