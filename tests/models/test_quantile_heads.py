"""Quantile heads: levels never cross (by construction, on any input), the pinball loss follows scikit-learn's
convention, every architecture with a head trains, predicts its median as the point forecast and survives a safe-mode
save/load, point networks keep their graph, and combinations that cannot work say so."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from sklearn.metrics import mean_pinball_loss

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural import architectures
from lstmkit.models.neural.forecaster import NETWORK_FILE, NeuralForecaster, build_network
from lstmkit.models.neural.heads import (
    HEAD_LAYER,
    MedianMAE,
    MonotoneQuantiles,
    PinballLoss,
    check_levels,
    median_index,
    pinball_loss,
)
from lstmkit.models.registry import load
from tests.models.test_architectures import CHANNELS, CONFIG, HORIZON, LOOKBACK, arch_module, tiny_spec, windows

LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
HEADED = [a for a in architectures.names() if a != "deepar"]  # DeepAR forecasts by its own likelihood (sample paths)


def head_spec(arch: str, normalization: str = "revin", levels: list[float] = LEVELS, dropout: float = 0.0):
    """tiny_spec with a quantile head (generic stacks for N-BEATS: interpretable ones cannot carry one)."""
    spec = tiny_spec(arch, normalization, dropout=dropout, **({"stacks": "generic"} if arch == "nbeats" else {}))
    return dataclasses.replace(spec, quantiles=list(levels))


@pytest.fixture(scope="module")
def prepared():
    """A small synthetic series (target plus two drivers) in windows of 16 steps and horizon 4."""
    frame, _ = make_synthetic(CONFIG["data"]["length"], 0.3, seed=3)
    return prepare(frame[["x1", "x2", "target"]], from_dict(CONFIG))


@pytest.mark.parametrize("levels", [[0.1, 0.9], [0.5, 0.1], [0.1, 0.5, 0.5], [0.0, 0.5], [0.5, 1.0], [], ["a", 0.5]])
def test_bad_levels_are_refused(levels):
    with pytest.raises(ConfigError, match="ModelSpec.quantiles"):
        check_levels(levels)


def test_good_levels_and_median():
    assert check_levels([0.1, 0.5, 0.9]) == [0.1, 0.5, 0.9]
    assert median_index(LEVELS) == 3 and median_index([0.5]) == 0


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3, 1e6])
def test_monotone_quantiles_never_cross_on_any_input(scale):
    layer = MonotoneQuantiles(LEVELS)
    k = len(LEVELS)
    raw = (np.random.default_rng(1).standard_cauchy(size=(256, 5 * k)) * scale).astype(np.float32)
    raw[:8] = -scale * 1e3  # increments underflow to 0: levels may tie, never cross
    q = np.asarray(layer(raw))
    assert q.shape == (256, 5, k)
    assert (np.diff(q, axis=-1) >= 0).all()
    np.testing.assert_array_equal(q[..., 3], raw.reshape(256, 5, k)[..., 3])  # the median is its raw output


def test_levels_are_the_median_plus_cumulative_softplus_increments():
    raw = np.random.default_rng(2).normal(size=(32, 2 * len(LEVELS))).astype(np.float32)
    q = np.asarray(MonotoneQuantiles(LEVELS)(raw), dtype=float)
    r = raw.reshape(32, 2, len(LEVELS)).astype(float)
    softplus = np.logaddexp(0.0, r)
    expected = np.empty_like(r)
    expected[..., 3] = r[..., 3]
    for k in (4, 5, 6):  # outwards above the median
        expected[..., k] = expected[..., k - 1] + softplus[..., k]
    for k in (2, 1, 0):  # and below it
        expected[..., k] = expected[..., k + 1] - softplus[..., k]
    np.testing.assert_allclose(q, expected, atol=1e-5)


@pytest.mark.parametrize("normalization", ["none", "last", "revin"])
def test_network_quantiles_never_cross_on_any_window(normalization):
    network = build_network(head_spec("lstm", normalization), LOOKBACK, CHANNELS, HORIZON)
    assert network.output_shape == (None, HORIZON, len(LEVELS))
    x = windows(64, seed=2) * np.logspace(-4, 4, 64, dtype=np.float32)[:, None, None]
    x[:4] = 7.0  # constant windows: revin's scale is its epsilon
    q = np.asarray(network.predict_on_batch(x))
    assert np.isfinite(q).all() and (np.diff(q, axis=-1) >= 0).all()


def test_pinball_loss_is_sklearn_mean_pinball_loss():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, HORIZON)).astype(np.float32)
    q = np.sort(rng.normal(size=(40, HORIZON, len(LEVELS))), axis=-1).astype(np.float32)
    expected = np.mean([mean_pinball_loss(y.ravel(), q[..., k].ravel(), alpha=tau) for k, tau in enumerate(LEVELS)])
    assert float(PinballLoss(LEVELS)(y, q)) == pytest.approx(expected, rel=1e-5)
    assert np.asarray(pinball_loss(y, q, LEVELS)).shape == (40,)
    # by hand, no factor 2: an observation 1 above the 0.9-quantile costs 0.9, 1 below it 0.1
    assert float(PinballLoss([0.5, 0.9])(np.ones((1, 1)), np.zeros((1, 1, 2)))) == pytest.approx((0.5 + 0.9) / 2)
    assert float(PinballLoss([0.5, 0.9])(np.zeros((1, 1)), np.ones((1, 1, 2)))) == pytest.approx((0.5 + 0.1) / 2)


def test_median_mae_reads_the_median_level():
    y = np.zeros((2, 3), dtype=np.float32)
    q = np.stack([np.full((2, 3), -9.0), np.full((2, 3), 0.25), np.full((2, 3), 9.0)], axis=-1).astype(np.float32)
    metric = MedianMAE([0.1, 0.5, 0.9])
    metric.update_state(y, q)
    assert metric.name == "mae" and float(metric.result()) == pytest.approx(0.25)


@pytest.mark.parametrize("arch", HEADED)
def test_head_adds_one_layer_and_leaves_the_point_graph(arch):
    arch_module(arch)
    point = build_network(tiny_spec(arch, "revin", **({"stacks": "generic"} if arch == "nbeats" else {})),
                          LOOKBACK, CHANNELS, HORIZON)
    headed = build_network(head_spec(arch), LOOKBACK, CHANNELS, HORIZON)
    assert HEAD_LAYER not in [layer.name for layer in point.layers] and point.output_shape == (None, HORIZON)
    assert [layer.name for layer in headed.layers if layer.name != HEAD_LAYER] == [layer.name for layer in point.layers]
    assert [w.path for w in headed.weights] == [w.path for w in point.weights]
    assert isinstance(point.loss, str) and point.loss == "mse"
    assert isinstance(headed.loss, PinballLoss) and headed.loss.levels == LEVELS
    if arch == "lstm":  # 8 units on 3 channels, Dense(horizon): the point network's parameter count is unchanged
        assert point.count_params() == 4 * (8 * (CHANNELS + 8) + 8) + (8 * HORIZON + HORIZON)
        assert headed.count_params() - point.count_params() == (len(LEVELS) - 1) * HORIZON * (8 + 1)


@pytest.mark.parametrize("arch", HEADED)
def test_every_architecture_with_a_head_trains_saves_and_loads(arch, prepared, tmp_path):
    arch_module(arch)
    training = from_dict(CONFIG).training.model_copy(update={"epochs": 1})
    forecaster = NeuralForecaster(head_spec(arch, "last"), training, seed=3).fit(prepared)
    assert {"loss", "val_loss", "mae", "val_mae"} <= set(forecaster.history_.columns)
    assert np.isfinite(forecaster.history_["loss"]).all()
    assert forecaster.get_tag("quantiles") and forecaster.summary()["tags"]["quantiles"]
    x, _ = prepared.windows("test", slice(0, 16))
    q = forecaster.predict_quantiles(x, LEVELS)
    assert q.shape == (16, HORIZON, len(LEVELS)) and (np.diff(q, axis=-1) >= 0).all()
    np.testing.assert_array_equal(forecaster.predict(x), q[..., LEVELS.index(0.5)])
    np.testing.assert_array_equal(forecaster.predict_quantiles(x, [0.1, 0.9]), q[..., [1, 5]])
    loaded = load(forecaster.save(tmp_path / arch))
    np.testing.assert_array_equal(loaded.predict_quantiles(x, LEVELS), q)
    network = keras.models.load_model(tmp_path / arch / NETWORK_FILE, safe_mode=True)
    assert isinstance(network.loss, PinballLoss) and network.loss.levels == LEVELS
    np.testing.assert_array_equal(np.asarray(network.predict_on_batch(x)), q.astype(np.float32))


def test_levels_outside_the_head_are_refused(prepared):
    training = from_dict(CONFIG).training.model_copy(update={"epochs": 1})
    forecaster = NeuralForecaster(head_spec("lstm", levels=[0.1, 0.5, 0.9]), training, seed=3).fit(prepared)
    x, _ = prepared.windows("test", slice(0, 4))
    with pytest.raises(ForecasterError, match=r"level\(s\) 0\.2, 0\.8 not among the levels its head was trained on"):
        forecaster.predict_quantiles(x, [0.2, 0.8])
    point = NeuralForecaster(tiny_spec("lstm"), training, seed=3).fit(prepared)
    assert not point.get_tag("quantiles")
    with pytest.raises(ForecasterError, match="'quantiles' capability"):
        point.predict_quantiles(x, [0.5])


def test_combinations_that_cannot_carry_a_head_say_so():
    spec = dataclasses.replace(tiny_spec("nbeats", stacks="interpretable"), quantiles=[0.1, 0.5, 0.9])
    with pytest.raises(ConfigError, match="interpretable N-BEATS"):
        build_network(spec, LOOKBACK, CHANNELS, HORIZON)
    with pytest.raises(ConfigError, match="0.5 must be among them"):
        build_network(head_spec("lstm", levels=[0.1, 0.9]), LOOKBACK, CHANNELS, HORIZON)
    if "deepar" in architectures.names():
        arch_module("deepar")
        with pytest.raises(ConfigError, match="own likelihood"):
            build_network(dataclasses.replace(tiny_spec("deepar"), quantiles=[0.1, 0.5, 0.9]), LOOKBACK, CHANNELS,
                          HORIZON)
