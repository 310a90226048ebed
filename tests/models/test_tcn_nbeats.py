"""TCN and N-BEATS: causality and receptive field of the TCN, the bases and stacking of N-BEATS, save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lstmkit.config import ConfigError, from_dict
from lstmkit.explain.integrated_gradients import integrated_gradients
from lstmkit.models.neural import architectures, nbeats, tcn
from lstmkit.models.neural.forecaster import NeuralForecaster, build_network
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.models.registry import load

LOOKBACK, CHANNELS, HORIZON = 16, 3, 6
TINY_OPTIONS = {"tcn": {"filters": 4, "kernel_size": 3},
                "nbeats": {"blocks": 2, "fc_layers": 2, "width": 8},
                "nbeats_i": {"stacks": "interpretable", "blocks": 2, "fc_layers": 2, "width": 8, "degree": 2,
                             "harmonics": 3}}


def network(kind: str, normalization: str = "none", target_index: int = 1, dropout: float = 0.0,
            lookback: int = LOOKBACK, horizon: int = HORIZON, **options) -> keras.Model:
    """A tiny uncompiled network of `kind` (tcn, nbeats, nbeats_i = interpretable N-BEATS)."""
    arch = "nbeats" if kind.startswith("nbeats") else kind
    spec = ModelSpec(architecture=arch, dropout=dropout, normalization=normalization,
                     options=TINY_OPTIONS[kind] | options)
    keras.utils.set_random_seed(3)
    return architectures.module(arch).build(spec, lookback, CHANNELS, horizon, target_index)


def windows(n: int = 4, lookback: int = LOOKBACK, seed: int = 0) -> np.ndarray:
    """Random windows (n, lookback, CHANNELS), float32."""
    return np.random.default_rng(seed).normal(size=(n, lookback, CHANNELS)).astype(np.float32)


# ------------------------------------------------------------------ TCN


@pytest.mark.parametrize("kernel_size", [2, 3, 5])
@pytest.mark.parametrize("lookback", [1, 7, 24, 200])
def test_tcn_auto_dilations_are_the_fewest_doublings_that_cover_the_lookback(kernel_size, lookback):
    dilations = tcn.auto_dilations(lookback, kernel_size)
    assert dilations == [2 ** i for i in range(len(dilations))]
    assert tcn.receptive_field(kernel_size, dilations) >= lookback
    assert len(dilations) == 1 or tcn.receptive_field(kernel_size, dilations[:-1]) < lookback


def test_tcn_network_uses_the_auto_dilations():
    net = network("tcn", lookback=24)
    rates = [layer.dilation_rate[0] for layer in net.layers
             if isinstance(layer, keras.layers.Conv1D) and layer.name.endswith("_conv_1")]
    assert rates == tcn.auto_dilations(24, 3) == [1, 2, 4]
    assert tcn.receptive_field(3, rates) == 29


def test_tcn_stack_output_at_step_t_ignores_later_inputs():
    stack = tcn.stack_model(network("tcn"))
    x = windows()
    base = np.asarray(stack.predict_on_batch(x))
    assert base.shape == (4, LOOKBACK, 4)
    for t in (0, 5, LOOKBACK - 2):
        changed = x.copy()
        changed[:, t + 1:, :] += 3.0
        out = np.asarray(stack.predict_on_batch(changed))
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-6)
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-3  # the later steps do see the change


def test_tcn_forecast_sees_exactly_its_receptive_field():
    with pytest.warns(UserWarning, match="fewer than the look-back"):
        net = network("tcn", dilations=[1], kernel_size=2)  # receptive field 1 + 2 * 1 * 1 = 3 steps
    x = windows()
    base = np.asarray(net.predict_on_batch(x))
    outside, inside = x.copy(), x.copy()
    outside[:, :LOOKBACK - 3, :] += 5.0
    inside[:, LOOKBACK - 3, :] += 5.0
    np.testing.assert_allclose(net.predict_on_batch(outside), base, atol=1e-6)
    assert np.abs(np.asarray(net.predict_on_batch(inside)) - base).max() > 1e-3


def test_tcn_skip_is_a_1x1_convolution_only_where_widths_differ():
    names = [layer.name for layer in network("tcn").layers]
    assert "block_1_skip" in names  # 3 channels -> 4 filters
    assert not any(n.startswith("block_2_skip") for n in names)  # 4 -> 4: identity


def test_tcn_rejects_a_kernel_of_one_and_warns_when_dilations_fall_short():
    with pytest.raises(ConfigError, match="model.tcn.kernel_size"):
        network("tcn", kernel_size=1)
    with pytest.raises(ConfigError, match="model.tcn.dilations"):
        network("tcn", dilations=[1, 0])
    with pytest.warns(UserWarning, match="fewer than the look-back"):
        network("tcn", dilations=[1])


# ------------------------------------------------------------------ N-BEATS


def test_nbeats_interpretable_trend_forecast_is_a_polynomial_of_the_given_degree():
    net = network("nbeats_i", horizon=8)
    trend = nbeats.stack_forecasts(net, windows())["trend"]
    t = np.arange(8) / 8
    for row in trend:
        exact = np.polynomial.Polynomial.fit(t, row, 2)
        np.testing.assert_allclose(exact(t), row, atol=1e-5)
        lower = np.polynomial.Polynomial.fit(t, row, 1)
        assert np.abs(lower(t) - row).max() > 1e-4  # degree 2 is used, not a line


def test_nbeats_seasonality_basis_continues_the_backcast_with_the_lookback_period():
    back = nbeats.basis_matrix("seasonality", "backcast", LOOKBACK, HORIZON, harmonics=3)
    fore = nbeats.basis_matrix("seasonality", "forecast", LOOKBACK, HORIZON, harmonics=3)
    assert back.shape == (1 + 2 * 3, LOOKBACK) and fore.shape == (1 + 2 * 3, HORIZON)
    np.testing.assert_allclose(fore, back[:, :HORIZON], atol=1e-5)  # step h repeats step h - lookback
    assert nbeats.harmonics_used(LOOKBACK, 50) == (LOOKBACK - 1) // 2  # capped below the Nyquist frequency


def test_nbeats_bases_are_fixed():
    net = network("nbeats_i")
    expansions = [layer for layer in net.layers if isinstance(layer, nbeats.BasisExpansion)]
    assert expansions and all(not layer.weights for layer in expansions)
    assert nbeats.stack_names(net) == ["trend", "seasonality"]
    assert nbeats.stack_names(network("nbeats")) == ["generic_1", "generic_2"]


@pytest.mark.parametrize("normalization", ["none", "last", "revin"])
@pytest.mark.parametrize("kind", ["nbeats", "nbeats_i"])
def test_nbeats_reads_the_target_channel_only_and_stacks_sum_to_the_forecast(kind, normalization):
    net = network(kind, normalization)
    x = windows()
    y = np.asarray(net.predict_on_batch(x))
    other = x.copy()
    other[:, :, [0, 2]] = np.random.default_rng(1).normal(size=(4, LOOKBACK, 2))
    np.testing.assert_allclose(net.predict_on_batch(other), y, atol=1e-6)
    target = x.copy()
    target[:, :, 1] += np.linspace(0, 2, LOOKBACK)
    assert np.abs(np.asarray(net.predict_on_batch(target)) - y).max() > 1e-4
    parts = nbeats.stack_forecasts(net, x)
    np.testing.assert_allclose(sum(parts.values()), y, atol=1e-5)


def test_nbeats_rejects_unknown_stacks():
    with pytest.raises(ConfigError, match="model.nbeats.stacks"):
        network("nbeats", stacks="seasonal")


def test_options_come_from_the_configuration_section():
    cfg = from_dict({"model": {"architecture": "nbeats", "nbeats": {"stacks": "interpretable", "width": 8,
                                                                     "blocks": 1, "fc_layers": 1}}})
    spec = ModelSpec.from_config(cfg)
    net = build_network(spec, LOOKBACK, CHANNELS, HORIZON)
    assert nbeats.stack_names(net) == ["trend", "seasonality"]
    assert net.get_layer("trend_fc_1").units == 8


# ------------------------------------------------------------------ both


@pytest.mark.parametrize("normalization", ["none", "last", "revin"])
@pytest.mark.parametrize("kind", ["tcn", "nbeats", "nbeats_i"])
def test_forecast_shape_and_safe_mode_round_trip(kind, normalization, tmp_path):
    net = network(kind, normalization, dropout=0.1)
    x = windows(5)
    y = np.asarray(net.predict_on_batch(x))
    assert y.shape == (5, HORIZON) and np.isfinite(y).all()
    net.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(x)), y)


@pytest.mark.parametrize("kind", ["tcn", "nbeats_i"])
def test_trained_forecaster_saves_and_loads_with_identical_forecasts(kind, row_prepared, tmp_path):
    prepared = row_prepared(n=120, train=80, val=20, lookback=12, horizon=3,
                            target_values=np.sin(np.arange(120) / 3.0))
    arch = "nbeats" if kind.startswith("nbeats") else kind
    spec = ModelSpec(architecture=arch, dropout=0.1, normalization="revin", batch_size=16,
                     options=TINY_OPTIONS[kind])
    forecaster = NeuralForecaster(spec, {"epochs": 1, "patience": 1, "verbose": 0}, seed=1).fit(prepared)
    expected = forecaster.predict_split(prepared, "test")
    loaded = load(forecaster.save(tmp_path / kind))
    np.testing.assert_array_equal(loaded.predict_split(prepared, "test"), expected)
    assert loaded.summary()["parameters"] == forecaster.summary()["parameters"]
    x, _ = prepared.windows("test", slice(0, 4))
    attr = integrated_gradients(loaded.network, x, baseline="zeros", steps=64, method="gausslegendre", target=0)
    assert attr.relative_gap() < 0.01
    if arch == "nbeats":  # univariate: the feature channel gets no attribution, the target channel does
        assert np.abs(attr.values[:, :, 0]).max() == 0 and np.abs(attr.values[:, :, 1]).max() > 0


def test_nbeats_interpretable_blocks_share_their_stack_weights_and_generic_blocks_do_not():
    def count(kind: str, blocks: int) -> int:
        return network(kind, blocks=blocks).count_params()

    assert count("nbeats_i", 2) == count("nbeats_i", 3)
    assert count("nbeats", 2) < count("nbeats", 3)
