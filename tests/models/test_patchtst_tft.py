"""PatchTST (patching, channel independence) and the TFT (variable selection, interpretable attention): the
behaviour each paper's design implies, and safe-mode save/load under every per-window normalisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lstmkit.models.neural import patchtst, tft
from lstmkit.models.neural.forecaster import build_network
from lstmkit.models.neural.spec import ModelSpec

LOOKBACK, CHANNELS, HORIZON, TARGET = 20, 3, 4, 1
PATCH = {"patch_len": 8, "stride": 4, "d_model": 8, "heads": 2, "layers": 1, "d_ff": 16}


def windows(n: int = 6, seed: int = 0, lookback: int = LOOKBACK) -> np.ndarray:
    """Random look-back windows (n, lookback, CHANNELS), float32."""
    return np.random.default_rng(seed).normal(size=(n, lookback, CHANNELS)).astype(np.float32)


def patch_spec(normalization: str = "none", **options) -> ModelSpec:
    """A tiny PatchTST spec."""
    return ModelSpec("patchtst", units=8, dropout=0.0, normalization=normalization, options=PATCH | options)


def tft_spec(normalization: str = "none", layers: int = 1) -> ModelSpec:
    """A tiny TFT spec (hidden size 8, 2 heads)."""
    return ModelSpec("tft", layers=layers, units=8, dropout=0.0, normalization=normalization, options={"heads": 2})


def trained_once(network: keras.Model, seed: int = 0) -> keras.Model:
    """One epoch on random windows, so that normalisation statistics and weights move away from their start."""
    x = windows(32, seed=seed, lookback=network.input_shape[1])
    network.fit(x, np.random.default_rng(seed).normal(size=(32, HORIZON)).astype(np.float32), epochs=1,
                batch_size=16, verbose=0)
    return network


@pytest.mark.parametrize(("lookback", "patch_len", "stride"), [(20, 8, 4), (20, 8, 8), (17, 5, 3), (336, 16, 8)])
def test_patch_count_follows_the_paper_with_end_padding(lookback, patch_len, stride):
    patches = (lookback - patch_len) // stride + 2
    assert patchtst.patch_geometry(lookback, patch_len, stride) == (patch_len, stride, patches)
    layer = patchtst.Patching(patch_len, stride, channel=TARGET)
    x = windows(2, lookback=lookback)
    out = np.asarray(layer(x))
    assert out.shape == (2, patches, patch_len) == layer.compute_output_shape(x.shape)
    series = np.concatenate([x[:, :, TARGET], np.repeat(x[:, -1:, TARGET], stride, axis=1)], axis=1)
    for p in range(patches):  # patch p: steps p*stride .. p*stride + patch_len - 1 of the padded target channel
        np.testing.assert_array_equal(out[:, p], series[:, p * stride:p * stride + patch_len])
    np.testing.assert_array_equal(out[:, -1, -1], x[:, -1, TARGET])  # the last patch ends in the padding


def test_patch_count_in_the_network_and_a_lookback_shorter_than_a_patch():
    network = build_network(patch_spec(), LOOKBACK, CHANNELS, HORIZON, TARGET)
    assert network.get_layer("patching").output.shape == (None, (LOOKBACK - 8) // 4 + 2, 8)
    assert network.get_layer("position_embedding").output.shape == (None, (LOOKBACK - 8) // 4 + 2, 8)
    short = build_network(patch_spec(patch_len=16, stride=8), 6, CHANNELS, HORIZON, TARGET)
    assert short.get_layer("patching").output.shape == (None, 2, 6)  # one patch of the window, one of the padding
    assert np.asarray(short.predict_on_batch(windows(3, lookback=6))).shape == (3, HORIZON)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_patchtst_is_channel_independent(norm):
    network = trained_once(build_network(patch_spec(norm=norm), LOOKBACK, CHANNELS, HORIZON, TARGET))
    x = windows(5, seed=1)
    y = np.asarray(network.predict_on_batch(x))
    others = x.copy()
    others[:, :, [0, 2]] = np.random.default_rng(2).normal(size=(5, LOOKBACK, 2)) * 10
    np.testing.assert_array_equal(np.asarray(network.predict_on_batch(others)), y)
    target = x.copy()
    target[:, :, TARGET] += np.linspace(0, 3, LOOKBACK)
    assert np.abs(np.asarray(network.predict_on_batch(target)) - y).max() > 1e-4


def test_patchtst_options_default_to_the_configuration_and_are_checked():
    network = build_network(ModelSpec("patchtst", units=8, normalization="revin"), 48, CHANNELS, HORIZON)
    assert network.get_layer("patch_embedding").units == 16  # PatchTSTConfig.d_model
    assert network.get_layer("patching").patch_len == 16 and network.get_layer("patching").stride == 8
    assert isinstance(network.get_layer("attention_norm_3"), keras.layers.BatchNormalization)  # 3 layers, BatchNorm
    assert network.get_layer("attention_1").get_config()["num_heads"] == 4
    assert network.get_layer("ff_in_1").units == 128
    layer_norm = build_network(patch_spec(norm="layer"), LOOKBACK, CHANNELS, HORIZON)
    assert isinstance(layer_norm.get_layer("ff_norm_1"), keras.layers.LayerNormalization)
    with pytest.raises(ValueError, match="norm"):
        build_network(patch_spec(norm="group"), LOOKBACK, CHANNELS, HORIZON)
    with pytest.raises(ValueError, match="multiple of heads"):
        build_network(patch_spec(d_model=10, heads=4), LOOKBACK, CHANNELS, HORIZON)


@pytest.mark.parametrize("layers", [1, 2])
def test_tft_attention_and_selection_weights_are_distributions(layers):
    network = trained_once(build_network(tft_spec("revin", layers), LOOKBACK, CHANNELS, HORIZON, TARGET))
    x = windows(7, seed=3)
    weights = tft.attention(network, x)
    assert set(weights) == {"time", "variables"}
    assert weights["time"].shape == (7, LOOKBACK) and weights["variables"].shape == (7, CHANNELS)
    for w in weights.values():
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-5)
        assert np.abs(w - w[:1]).max() > 0, "the weights do not depend on the window"
    assert len([layer for layer in network.layers if isinstance(layer, keras.layers.LSTM)]) == layers


def test_tft_attention_is_the_head_average_and_uses_one_value_projection():
    network = build_network(tft_spec(), LOOKBACK, CHANNELS, HORIZON)
    layer = network.get_layer(tft.ATTENTION_LAYER)
    assert layer.value.kernel.shape == (8, 8 // 2)  # shared by the heads: one (units, units // heads) projection
    x = np.random.default_rng(4).normal(size=(3, LOOKBACK, 8)).astype(np.float32)
    out, weights = (np.asarray(a) for a in layer(x))
    q = np.einsum("td,dhk->thk", x[:, -1], np.asarray(layer.query.kernel))
    k = np.einsum("btd,dhk->bthk", x, np.asarray(layer.key.kernel))
    scores = np.einsum("bhk,bshk->bhs", q, k) / np.sqrt(4)
    heads = np.exp(scores - scores.max(-1, keepdims=True))
    heads /= heads.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights[:, 0], heads.mean(axis=1), atol=1e-5)
    v = x @ np.asarray(layer.value.kernel) + np.asarray(layer.value.bias)
    expected = np.einsum("bs,bsk->bk", heads.mean(axis=1), v) @ np.asarray(layer.out.kernel) + np.asarray(layer.out.bias)
    np.testing.assert_allclose(out[:, 0], expected, atol=1e-4)


def test_tft_channel_grns_have_their_own_weights_and_see_only_their_channel():
    layer = tft.ChannelGatedResidualNetwork(units=4, channels=3)
    a = np.random.default_rng(6).normal(size=(2, 5, 3, 4)).astype(np.float32)
    layer.build(a.shape)
    rng = np.random.default_rng(7)
    for w in layer.weights:  # distinct weights per channel (the zeros/ones initialisation would make them equal)
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    out = np.asarray(layer(a))
    w = {v.name: np.asarray(v) for v in layer.weights}
    for c in range(3):  # channel c: LayerNorm_c(a + GLU_c(W1_c ELU(W2_c a + b2_c) + b1_c))
        h = a[:, :, c] @ w["hidden_kernel"][c] + w["hidden_bias"][c]
        h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
        g = (h @ w["mix_kernel"][c] + w["mix_bias"][c]) @ w["glu_kernel"][c] + w["glu_bias"][c]
        y = a[:, :, c] + g[..., 4:] / (1 + np.exp(-g[..., :4]))
        y = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) + 1e-3)
        np.testing.assert_allclose(out[:, :, c], y * w["gamma"][c] + w["beta"][c], rtol=1e-4, atol=1e-4)
    changed = a.copy()
    changed[:, :, 0] += 1.0
    moved = np.asarray(layer(changed))
    np.testing.assert_array_equal(moved[:, :, 1:], out[:, :, 1:])  # each channel's GRN sees only its channel
    assert np.abs(moved[:, :, 0] - out[:, :, 0]).max() > 1e-3
    same = np.repeat(a[:, :, :1], 3, axis=2)  # one input on every channel: different weights, different outputs
    outputs = np.asarray(layer(same))
    assert np.abs(outputs[:, :, 1] - outputs[:, :, 0]).max() > 1e-3


def test_tft_rejects_more_heads_than_units():
    with pytest.raises(ValueError, match="heads"):
        build_network(ModelSpec("tft", units=4, options={"heads": 8}), LOOKBACK, CHANNELS, HORIZON)


@pytest.mark.parametrize("normalization", ["none", "last", "revin"])
@pytest.mark.parametrize("spec", [patch_spec, tft_spec], ids=["patchtst", "tft"])
def test_save_load_in_safe_mode_gives_identical_forecasts(spec, normalization, tmp_path):
    network = trained_once(build_network(spec(normalization), LOOKBACK, CHANNELS, HORIZON, TARGET))
    x = windows(9, seed=5)
    before = np.asarray(network.predict_on_batch(x))
    network.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(x)), before)
    if network.name == "tft_forecaster":
        for key, value in tft.attention(network, x).items():
            np.testing.assert_array_equal(tft.attention(loaded, x)[key], value)
