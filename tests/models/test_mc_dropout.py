"""MC dropout samples only the Dropout layers: every other layer keeps its weights and inference behaviour (PatchTST's
BatchNormalization statistics included), sampling off gives predict's forecasts exactly, samples differ between
passes and repeat per seed, and recurrent layers stay cuDNN-eligible."""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import pytest

from lstmkit.config import from_dict
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural import lstm as lstm_module
from lstmkit.models.neural import mc_dropout
from lstmkit.models.neural.forecaster import NeuralForecaster, build_network
from lstmkit.models.registry import load
from tests.models.test_architectures import (
    CHANNELS,
    CONFIG,
    HORIZON,
    LOOKBACK,
    RECURRENT,
    arch_module,
    recurrent_layers,
    tiny_spec,
    windows,
)

SAMPLED = ("lstm", "patchtst", "tft", "tcn", "nbeats", "attention_lstm")


def network(arch: str, dropout: float = 0.3, trained: bool = True, **options) -> keras.Model:
    """A tiny network of the architecture (PatchTST with BatchNorm), one training step taken so that BatchNorm's
    moving statistics and every weight are away from their initial values."""
    arch_module(arch)
    if arch == "patchtst":
        options = {"norm": "batch"} | options
    net = build_network(tiny_spec(arch, "revin", dropout=dropout, **options), LOOKBACK, CHANNELS, HORIZON)
    if trained:
        keras.utils.set_random_seed(0)
        x = windows(32, seed=4)
        net.fit(x, x[:, -HORIZON:, -1] + 0.5, epochs=1, batch_size=32, verbose=0)
    return net


@functools.cache
def shared(arch: str) -> keras.Model:
    """network(arch), built and trained once for the tests that only read it."""
    return network(arch)


def values(net: keras.Model) -> dict[str, np.ndarray]:
    """Every variable of the network (trainable, BatchNorm statistics, seed-generator states) by path."""
    return {v.path: np.array(v.numpy()) for v in net.variables}


@pytest.mark.parametrize("arch", SAMPLED)
def test_sampling_leaves_every_variable_untouched(arch):
    net = shared(arch)
    before = values(net)
    samples = mc_dropout.sample(net, windows(20), 8, seed=1)
    assert samples.shape == (20, 8, HORIZON) and np.isfinite(samples).all()
    after = values(net)
    assert after.keys() == before.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert all("call" not in vars(layer) for layer in mc_dropout.dropout_layers(net))  # Dropout calls restored


def test_batchnorm_statistics_untouched_where_a_training_call_would_move_them():
    net = network("patchtst")
    stats = [v for v in net.variables if "moving_" in v.path]
    assert stats, "PatchTST with norm=batch has BatchNormalization statistics"
    before = [np.array(v.numpy()) for v in stats]
    x = windows(20)
    mc_dropout.sample(net, x, 16, seed=0)
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(stats, before, strict=True))
    off = mc_dropout.sample(net, x, 2, seed=0, sampling=False)  # BatchNorm normalised by its moving statistics
    np.testing.assert_array_equal(off[:, 0], np.asarray(net.predict_on_batch(x)))
    net(x, training=True)  # what MC dropout must not do: a training-mode call overwrites the statistics
    assert not all(np.array_equal(v.numpy(), b) for v, b in zip(stats, before, strict=True))


@pytest.mark.parametrize("arch", SAMPLED)
def test_sampling_off_gives_predict_exactly(arch):
    net = shared(arch)
    x = windows(24, seed=3)
    off = mc_dropout.sample(net, x, 5, seed=7, sampling=False)
    expected = np.asarray(net.predict_on_batch(x), dtype=float)
    for s in range(5):
        np.testing.assert_array_equal(off[:, s], expected)


@pytest.mark.parametrize("arch", SAMPLED)
def test_samples_differ_and_repeat_per_seed(arch):
    net = shared(arch)
    x = windows(12, seed=5)
    a = mc_dropout.sample(net, x, 10, seed=3)
    assert (a.std(axis=1) > 0).all(), "each window's samples must differ"
    np.testing.assert_array_equal(mc_dropout.sample(net, x, 10, seed=3), a)
    assert np.abs(mc_dropout.sample(net, x, 10, seed=4) - a).max() > 1e-3
    # sample s of a window does not depend on the other windows nor on how many rows go in one pass
    np.testing.assert_allclose(mc_dropout.sample(net, x[5:7], 10, seed=3, batch_size=10), a[5:7], atol=1e-5)


def test_inverted_dropout_keeps_the_mean():
    # LSTM -> Dropout -> Dense: the forecast is linear in the dropped features, so the samples' mean is predict's
    net = network("lstm", dropout=0.5)
    x = windows(6, seed=8)
    samples = mc_dropout.sample(net, x, 4000, seed=0)
    expected = np.asarray(net.predict_on_batch(x), dtype=float)
    spread = samples.std(axis=1)
    assert (spread > 1e-3).all()
    assert np.abs(samples.mean(axis=1) - expected).max() < 5 * (spread / np.sqrt(4000)).max()


@pytest.mark.parametrize("arch", RECURRENT + ("tft",))
def test_recurrent_layers_stay_cudnn_eligible(arch):
    assert tuple(int(p) for p in keras.__version__.split(".")[:2]) >= (3, 9)  # no LSTM input dropout at inference
    net = network(arch, trained=False)
    layers = recurrent_layers(net)
    assert layers
    mc_dropout.sample(net, windows(4), 3, seed=0)
    for layer in layers:
        config = layer.get_config()
        assert config["dropout"] == 0 and config["recurrent_dropout"] == 0, layer.name
        assert config["activation"] == "tanh" and config["recurrent_activation"] == "sigmoid", layer.name
        assert config["unroll"] is False and config["use_bias"] is True, layer.name
        assert config.get("use_cudnn", "auto") in ("auto", True), layer.name
        assert not isinstance(layer, keras.layers.Dropout)
    assert not any(isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)) for layer in mc_dropout.dropout_layers(net))


def test_only_dropout_layers_sample_and_a_network_without_one_is_refused():
    net = network("tft", trained=False)
    nested = mc_dropout.dropout_layers(net)
    assert {type(layer) for layer in nested} == {keras.layers.Dropout}
    assert len(nested) > len([layer for layer in net.layers if isinstance(layer, keras.layers.Dropout)])  # nested
    with pytest.raises(ForecasterError, match="no.*Dropout|Dropout layer with a positive rate"):
        mc_dropout.sample(network("lstm", dropout=0.0, trained=False), windows(3), 4)


@pytest.fixture(scope="module")
def prepared():
    """The architecture tests' small synthetic series (target plus two drivers, look-back 16, horizon 4)."""
    frame, _ = make_synthetic(CONFIG["data"]["length"], 0.3, seed=3)
    return prepare(frame[["x1", "x2", "target"]], from_dict(CONFIG))


def test_forecaster_samples_by_mc_dropout_or_the_architectures_own_sampler(prepared, monkeypatch, tmp_path):
    training = from_dict(CONFIG).training.model_copy(update={"epochs": 1})
    point = NeuralForecaster(tiny_spec("lstm", dropout=0.0), training, seed=3)
    assert not point.get_tag("samples")
    forecaster = NeuralForecaster(tiny_spec("lstm", dropout=0.3), training, seed=3)
    assert forecaster.get_tag("samples")  # before fitting: from the spec's dropout
    forecaster.fit(prepared)
    assert forecaster.get_tag("samples") and forecaster.summary()["tags"]["samples"]
    x, _ = prepared.windows("test", slice(0, 9))
    s = forecaster.predict_samples(x, 20, seed=2)
    assert s.shape == (9, 20, HORIZON)
    np.testing.assert_array_equal(forecaster.predict_samples(x, 20, seed=2), s)
    loaded = load(forecaster.save(tmp_path / "lstm"))  # sampling left nothing in the network that saving trips on
    np.testing.assert_array_equal(loaded.predict_samples(x, 20, seed=2), s)
    point.fit(prepared)
    with pytest.raises(ForecasterError, match="'samples' capability"):
        point.predict_samples(x, 5)
    headed = NeuralForecaster(dataclasses.replace(tiny_spec("lstm", dropout=0.3), quantiles=[0.1, 0.5, 0.9]),
                              training, seed=3).fit(prepared)
    off = mc_dropout.sample(headed.network, x, 3, seed=0, sampling=False, output_index=1)
    np.testing.assert_array_equal(off[:, 0], headed.predict(x))  # a quantile head's samples are of its median
    assert headed.predict_samples(x, 4, seed=0).shape == (9, 4, HORIZON)
    calls = []

    def own_sampler(net, windows, n, seed):
        """An architecture's own sampler (as DeepAR's): called instead of MC dropout."""
        calls.append((n, seed))
        return np.zeros((len(windows), n, HORIZON))

    monkeypatch.setattr(lstm_module, "sample", own_sampler, raising=False)
    assert not forecaster.predict_samples(x, 5, seed=9).any() and calls == [(5, 9)]
