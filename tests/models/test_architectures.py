"""What every neural architecture does beyond the forecaster contract (tests/models/test_contract.py): (batch,
horizon) forecasts under each per-window normalisation, complete Integrated Gradients on a trained network, attention
weights that are distributions, and cuDNN-eligible recurrent layers.

An architecture whose module is not written yet is skipped (only a missing module: any other import error fails).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import keras
import numpy as np
import pytest

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.explain.integrated_gradients import integrated_gradients
from lstmkit.models.neural import architectures
from lstmkit.models.neural.forecaster import NeuralForecaster, build_network
from lstmkit.models.neural.spec import ModelSpec

LOOKBACK, CHANNELS, HORIZON = 16, 3, 4
RECURRENT = ("lstm", "gru", "bilstm", "cnn_lstm", "attention_lstm")
TINY_OPTIONS = {  # small versions of each architecture's own settings (the rest: the configuration's defaults)
    "cnn_lstm": {"filters": 4, "kernel_size": 3, "conv_layers": 2},
    "tcn": {"filters": 4, "kernel_size": 3},
    "nbeats": {"blocks": 1, "fc_layers": 2, "width": 16, "degree": 2, "harmonics": 2},
    "patchtst": {"patch_len": 8, "stride": 4, "d_model": 8, "heads": 2, "layers": 1, "d_ff": 16},
    "tft": {"heads": 2},
}
CONFIG = {"seed": 3, "data": {"features": ["x1", "x2"], "length": 360},
          "window": {"lookback": LOOKBACK, "horizon": HORIZON},
          "training": {"epochs": 2, "patience": 5, "verbose": 0}, "tuning": {"strategy": "none"}}


def arch_module(name: str) -> ModuleType:
    """The architecture's module; skips the test while lstmkit/forecasters/<name>.py does not exist yet."""
    try:
        return importlib.import_module(f"lstmkit.models.neural.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"lstmkit.models.neural.{name}":
            pytest.skip(f"lstmkit/models/neural/{name}.py is not written yet")
        raise


def tiny_spec(arch: str, normalization: str = "last", layers: int = 1, dropout: float = 0.0, **options) -> ModelSpec:
    """A spec with 8 units and the architecture's tiny options (the configuration's defaults for the others)."""
    opts = architectures.config_options(from_dict({}), arch) | TINY_OPTIONS.get(arch, {}) | options
    return ModelSpec(arch, layers=layers, units=8, dropout=dropout, batch_size=32, normalization=normalization,
                     options=opts)


def windows(n: int = 6, seed: int = 0) -> np.ndarray:
    """Random look-back windows (n, LOOKBACK, CHANNELS), float32."""
    return np.random.default_rng(seed).normal(size=(n, LOOKBACK, CHANNELS)).astype(np.float32)


def recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every LSTM and GRU layer of the model, including those inside wrappers (Bidirectional) and custom layers."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU))]


@pytest.fixture(scope="module")
def prepared():
    """A small synthetic series (target plus two drivers) in windows of 16 steps and horizon 4."""
    frame, _ = make_synthetic(CONFIG["data"]["length"], 0.3, seed=3)
    return prepare(frame[["x1", "x2", "target"]], from_dict(CONFIG))


@pytest.fixture(scope="module")
def trained(prepared):
    """Factory: a NeuralForecaster of the architecture trained for 2 epochs (each trained once per module)."""
    cache: dict[str, NeuralForecaster] = {}

    def get(arch: str) -> NeuralForecaster:
        arch_module(arch)
        if arch not in cache:
            cache[arch] = NeuralForecaster(tiny_spec(arch), from_dict(CONFIG).training, seed=3).fit(prepared)
        return cache[arch]

    return get


@pytest.mark.parametrize("normalization", ["none", "last", "revin"])
@pytest.mark.parametrize("arch", architectures.names())
def test_forward_pass_shape_and_normalisation(arch, normalization):
    arch_module(arch)
    network = build_network(tiny_spec(arch, normalization, layers=2, dropout=0.1), LOOKBACK, CHANNELS, HORIZON)
    assert network.name == f"{arch}_forecaster"
    x = windows()
    y = np.asarray(network(x, training=False))
    assert y.shape == (len(x), HORIZON)
    assert np.isfinite(y).all()
    assert np.abs(y - y[:1]).max() > 0, "the forecast does not depend on the window"
    if normalization != "none":  # per-window normalisation: a level shift of every channel shifts the forecast
        shifted = np.asarray(network(x + 5.0, training=False))
        np.testing.assert_allclose(shifted, y + 5.0, atol=2e-4)


@pytest.mark.parametrize("arch", architectures.names())
def test_integrated_gradients_complete_on_trained_network(arch, trained, prepared):
    forecaster = trained(arch)
    x, _ = prepared.windows("test", slice(0, 8))
    attr = integrated_gradients(forecaster.network, x, baseline="zeros", steps=64, method="gausslegendre", target=0)
    assert attr.values.shape == x.shape
    assert np.abs(attr.delta).sum() > 0
    assert attr.relative_gap() < 0.01, f"{arch}: completeness gap {attr.relative_gap():.2%} of |f(x) - f(0)|"


@pytest.mark.parametrize("arch", architectures.names())
def test_attention_weights_are_distributions(arch, trained, prepared):
    module = arch_module(arch)
    forecaster = trained(arch)
    x, _ = prepared.windows("test", slice(0, 10))
    if not module.TAGS.get("attention"):
        assert not forecaster.get_tag("attention")
        with pytest.raises(ForecasterError, match="no attention"):
            forecaster.attention(x)
        return
    weights = forecaster.attention(x)
    assert weights["time"].shape == (len(x), LOOKBACK)
    assert (weights["time"] >= 0).all()
    np.testing.assert_allclose(weights["time"].sum(axis=1), 1.0, atol=1e-5)
    if forecaster.get_tag("variable_selection"):
        assert weights["variables"].shape == (len(x), CHANNELS)
        assert (weights["variables"] >= 0).all()
        np.testing.assert_allclose(weights["variables"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("score", ["additive", "dot"])
def test_attention_lstm_context_is_the_weighted_sum_of_encoder_states(score):
    module = arch_module("attention_lstm")
    network = build_network(tiny_spec("attention_lstm", "revin", layers=2, score=score), LOOKBACK, CHANNELS, HORIZON)
    layer = network.get_layer(module.ATTENTION_LAYER)
    assert layer.score == score
    states = network.get_layer("lstm_2").output[0]
    probe = keras.Model(network.inputs, [states, *layer.output])
    x = windows(5, seed=1)
    h, context, weights = (np.asarray(a, dtype=float) for a in probe.predict_on_batch(x))
    np.testing.assert_allclose(weights, module.attention(network, x)["time"], atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(context, np.einsum("bt,btd->bd", weights, h), atol=1e-5)
    assert np.abs(weights - weights[:1]).max() > 0, "the attention weights do not depend on the window"


def test_attention_lstm_rejects_an_unknown_score():
    with pytest.raises(ValueError, match="score"):
        build_network(tiny_spec("attention_lstm", score="cosine"), LOOKBACK, CHANNELS, HORIZON)


def test_cnn_lstm_convolutions_follow_the_options_and_are_causal():
    arch_module("cnn_lstm")
    network = build_network(tiny_spec("cnn_lstm", "none", filters=5, kernel_size=4, conv_layers=3),
                            LOOKBACK, CHANNELS, HORIZON)
    convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [(5, (4,), "causal")] * 3
    features = keras.Model(network.inputs, convs[-1].output)
    x = windows(2, seed=2)
    changed = x.copy()
    changed[:, -1, :] += 10.0  # a change at the newest step reaches no earlier convolution output
    a, b = np.asarray(features.predict_on_batch(x)), np.asarray(features.predict_on_batch(changed))
    np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
    defaults = build_network(ModelSpec("cnn_lstm", units=8, normalization="none"), LOOKBACK, CHANNELS, HORIZON)
    assert len([layer for layer in defaults.layers if isinstance(layer, keras.layers.Conv1D)]) == 2  # config default


@pytest.mark.parametrize("arch", architectures.names())
def test_recurrent_layers_are_cudnn_eligible(arch):
    arch_module(arch)
    network = build_network(tiny_spec(arch, layers=2, dropout=0.2), LOOKBACK, CHANNELS, HORIZON)
    layers = recurrent_layers(network)
    if arch in RECURRENT:
        assert len(layers) >= 2 * (2 if arch == "bilstm" else 1)
    for layer in layers:
        config = layer.get_config()
        assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid", layer.name
        assert config["recurrent_dropout"] == 0 and config["unroll"] is False and config["use_bias"] is True, layer.name
        if isinstance(layer, keras.layers.GRU):
            assert config["reset_after"] is True, layer.name


def test_every_file_that_builds_a_network_is_an_architecture_and_nothing_else_is():
    assert architectures.names() == ("attention_lstm", "bilstm", "cnn_lstm", "deepar", "gru", "lstm", "nbeats",
                                     "patchtst", "tcn", "tft")
    for name in architectures.names():
        assert architectures.module(name).__name__ == f"lstmkit.models.neural.{name}"
    with pytest.raises(ConfigError, match="model.architecture: 'transformer' is not one of attention_lstm, "):
        architectures.module("transformer")
