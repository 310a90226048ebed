"""DeepAR (lstmkit.models.neural.deepar): the likelihoods against scipy, teacher-forced training by NLL, a point forecast
that beats a constant, sample paths that are reproducible per seed and spread as the learned scale on a series of
known noise (intervals covering at their nominal rate), safe-mode save/load, the forecaster contract, and tuning."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from lstmkit.config import ConfigError, from_dict
from lstmkit.core.errors import ForecasterError
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.neural import deepar
from lstmkit.models.neural.forecaster import NeuralForecaster, build_network, set_seed
from lstmkit.models.neural.spec import ModelSpec
from lstmkit.models.registry import load
from lstmkit.tuning.objective import train_trial
from lstmkit.tuning.space import search_space

LOOKBACK, HORIZON, NOISE, PERIOD = 24, 6, 0.3, 12


def spec(likelihood: str = "gaussian", normalization: str = "none", **kw) -> ModelSpec:
    """A tiny DeepAR spec (8 units)."""
    return ModelSpec("deepar", units=8, dropout=kw.pop("dropout", 0.0), normalization=normalization,
                     learning_rate=kw.pop("learning_rate", 1e-2), batch_size=64,
                     options={"likelihood": likelihood, "samples": 100}, **kw)


def toy(noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows (n, LOOKBACK, 1) and futures (n, HORIZON) of sin(2 pi t / PERIOD) + noise: the step-ahead law is known."""
    s = (np.sin(2 * np.pi * np.arange(len(noise)) / PERIOD) + noise).astype(np.float32)
    idx = np.arange(len(s) - LOOKBACK - HORIZON + 1)
    return s[idx[:, None] + np.arange(LOOKBACK)][..., None], s[idx[:, None] + LOOKBACK + np.arange(HORIZON)]


@pytest.fixture(scope="module")
def fitted():
    """A Gaussian DeepAR trained 8 epochs on the first 2,400 windows of sine + N(0, 0.3^2) noise; the rest held out."""
    x, y = toy(NOISE * np.random.default_rng(0).standard_normal(3000))
    keras.backend.clear_session()
    set_seed(1)
    network = build_network(spec(), LOOKBACK, 1, HORIZON)
    history = network.fit(x[:2400], y[:2400], epochs=8, batch_size=64, verbose=0, validation_data=(x[2500:], y[2500:]))
    return network, history.history, (x[:2400], y[:2400]), (x[2500:], y[2500:])


# ------------------------------------------------------------------ the likelihoods


def test_log_gamma_matches_scipy():
    x = np.array([1e-3, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 10.0, 55.5, 1e4])
    np.testing.assert_allclose(np.asarray(deepar.log_gamma(x)), special.gammaln(x), rtol=1e-9, atol=1e-9)


def test_gaussian_nll_equals_scipy_logpdf():
    rng = np.random.default_rng(1)
    y, loc, scale = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.05, 3.0, size=50)
    np.testing.assert_allclose(np.asarray(deepar.negative_log_likelihood(y, loc, scale)),
                               -stats.norm.logpdf(y, loc, scale), rtol=1e-10)


def test_student_t_nll_equals_scipy_logpdf():
    rng = np.random.default_rng(2)
    y, loc, scale = 5 * rng.normal(size=60), rng.normal(size=60), rng.uniform(0.05, 3.0, size=60)
    df = np.concatenate([rng.uniform(2.0, 5.0, 20), rng.uniform(5.0, 50.0, 20), rng.uniform(50.0, 1e4, 20)])
    np.testing.assert_allclose(np.asarray(deepar.negative_log_likelihood(y, loc, scale, df)),
                               -stats.t.logpdf(y, df, loc, scale), rtol=1e-9)


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
@pytest.mark.parametrize("normalization", ["none", "revin"])
def test_loss_is_the_teacher_forced_nll_in_data_units(likelihood, normalization):
    network = build_network(spec(likelihood, normalization), LOOKBACK, 2, HORIZON, target_index=0)
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(5, LOOKBACK, 2)) * [2.0, 1.0] + [3.0, -1.0]).astype(np.float32)
    y = (rng.normal(size=(5, HORIZON)) * 2 + 3).astype(np.float32)
    (loc, scale, df), targets = network.distributions(x, y)
    loc, scale = np.asarray(loc, dtype=float), np.asarray(scale, dtype=float)
    assert loc.shape == scale.shape == targets.shape == (5, LOOKBACK + HORIZON - 1)
    np.testing.assert_array_equal(np.asarray(targets), np.concatenate([x[:, 1:, 0], y], axis=1))
    logpdf = (stats.norm.logpdf(targets, loc, scale) if df is None
              else stats.t.logpdf(targets, np.asarray(df, dtype=float), loc, scale))
    network.nll_tracker.reset_state()
    y_pred = network(x)
    loss = network.compute_loss(x, y, y_pred, training=False)
    np.testing.assert_allclose(float(network.nll_tracker.result()), -logpdf.mean(), rtol=1e-4)
    # the value reported as the loss is the point forecast's MSE, like every other architecture's loss
    np.testing.assert_allclose(float(loss), np.mean((np.asarray(y_pred) - y) ** 2), rtol=1e-5)
    # teacher forcing: the actual future value at step h feeds the distribution of step h + 1 only
    changed = y.copy()
    changed[:, 2] += 1.0
    (loc2, _, _), _ = network.distributions(x, changed)
    first = LOOKBACK - 1  # the distribution of the first horizon step
    np.testing.assert_array_equal(np.asarray(loc2)[:, :first + 3], loc[:, :first + 3].astype(np.float32))
    assert np.abs(np.asarray(loc2)[:, first + 3] - loc[:, first + 3]).min() > 0


def test_per_window_scaling_scales_the_distribution_and_the_samples():
    """With `revin`, a window and its future rescaled by a and shifted by b get loc * a + b and scale * a."""
    network = build_network(spec("student_t", "revin"), LOOKBACK, 2, HORIZON, target_index=0)
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(4, LOOKBACK, 2)).astype(np.float32), rng.normal(size=(4, HORIZON)).astype(np.float32)
    a, b = 3.0, 2.0
    before, after = deepar.predictive(network, x, y), deepar.predictive(network, a * x + b, a * y + b)
    np.testing.assert_allclose(after["loc"], a * before["loc"] + b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(after["scale"], a * before["scale"], rtol=1e-4)
    np.testing.assert_allclose(after["df"], before["df"], rtol=1e-4)
    np.testing.assert_allclose(deepar.sample(network, a * x + b, 5, seed=1), a * deepar.sample(network, x, 5, seed=1) + b,
                               rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("normalization", ["none", "revin"])
def test_the_mean_path_is_the_teacher_forced_mean_of_itself(normalization):
    """Fed back as if it were the actuals, the point forecast reproduces its own step means: the step-by-step cells
    (held covariates, flag) and the whole-sequence LSTM pass agree."""
    network = build_network(spec("gaussian", normalization, layers=2), LOOKBACK, 3, HORIZON, target_index=1)
    x = np.random.default_rng(11).normal(size=(6, LOOKBACK, 3)).astype(np.float32)
    point = np.asarray(network(x))
    np.testing.assert_allclose(deepar.predictive(network, x, point)["loc"], point, rtol=1e-4, atol=1e-5)
    moved = x.copy()
    moved[:, :, [0, 2]] += np.random.default_rng(12).normal(size=(6, LOOKBACK, 2))  # the covariates matter
    assert np.abs(np.asarray(network(moved)) - point).max() > 1e-4


def test_the_gradient_is_the_nlls_not_the_mses():
    network = build_network(spec("student_t", "last"), LOOKBACK, 1, HORIZON)
    x, y = toy(NOISE * np.random.default_rng(4).standard_normal(200))
    x, y = tf.constant(x[:16]), tf.constant(y[:16])
    with tf.GradientTape(persistent=True) as tape:
        loss = network.compute_loss(x, y, network(x, training=True), training=True)
        (loc, scale, df), targets = network.distributions(x, y, training=True)
        nll = tf.reduce_mean(deepar.negative_log_likelihood(targets, loc, scale, df))
    weights = network.trainable_weights
    for a, b in zip(tape.gradient(loss, weights), tape.gradient(nll, weights)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_a_one_step_horizon_trains_and_samples():
    network = build_network(spec("student_t", "last"), LOOKBACK, 2, 1)
    x = np.random.default_rng(9).normal(size=(32, LOOKBACK, 2)).astype(np.float32)
    y = np.random.default_rng(10).normal(size=(32, 1)).astype(np.float32)
    history = network.fit(x, y, epochs=1, batch_size=16, verbose=0).history
    assert np.isfinite(history["nll"]).all()
    assert np.asarray(network(x)).shape == (32, 1) and deepar.sample(network, x[:3], 4, seed=0).shape == (3, 4, 1)


def test_unknown_likelihood_and_quantile_head_are_refused():
    with pytest.raises(ConfigError, match="model.deepar.likelihood"):
        deepar.build(spec("laplace"), LOOKBACK, 1, HORIZON)
    with pytest.raises((ForecasterError, ConfigError), match="(?i)deepar"):
        build_network(spec(quantiles=[0.1, 0.5, 0.9]), LOOKBACK, 1, HORIZON)


# ------------------------------------------------------------------ training on a series of known noise


def test_trains_by_nll_and_beats_a_constant(fitted):
    network, history, (_, y_train), (x_test, y_test) = fitted
    assert history["val_nll"][-1] < history["val_nll"][0] - 0.1
    point = np.asarray(network.predict_on_batch(x_test))
    mse, constant = np.mean((point - y_test) ** 2), np.mean((y_test - y_train.mean()) ** 2)
    assert mse < 0.25 * constant, f"DeepAR MSE {mse:.3f} vs constant {constant:.3f}"
    assert mse < 2 * NOISE ** 2  # near the noise floor (0.09)


def test_learned_scale_is_the_noise_scale(fitted):
    network, _, _, (x_test, y_test) = fitted
    scale = deepar.predictive(network, x_test, y_test)["scale"]
    assert scale.shape == y_test.shape
    assert 0.8 * NOISE < np.median(scale[:, 0]) < 1.25 * NOISE


def test_samples_are_reproducible_per_seed(fitted):
    network, _, _, (x_test, _) = fitted
    a = deepar.sample(network, x_test[:7], 30, seed=5)
    assert a.shape == (7, 30, HORIZON) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, deepar.sample(network, x_test[:7], 30, seed=5))
    assert not np.allclose(a, deepar.sample(network, x_test[:7], 30, seed=6))
    assert np.abs(a - a[:, :1]).max() > 0  # the samples of one window differ


def test_sample_spread_matches_the_learned_scale_and_covers(fitted):
    network, _, _, (x_test, y_test) = fitted
    x, y = x_test[:200], y_test[:200]
    paths = deepar.sample(network, x, 1000, seed=0)
    first = deepar.predictive(network, x, y)
    # the first step is drawn from the predictive distribution itself: its spread and centre are the learned ones
    ratio = paths[:, :, 0].std(axis=1) / first["scale"][:, 0]
    assert 0.97 < ratio.mean() < 1.03
    point = np.asarray(network.predict_on_batch(x))
    np.testing.assert_allclose(paths[:, :, 0].mean(axis=1), point[:, 0], atol=5 * NOISE / np.sqrt(1000))
    # later steps: at least the one-step noise, and the mean of the paths is close to the mean path
    assert (paths.std(axis=1).mean(axis=0) > 0.9 * NOISE).all()
    assert np.abs(paths.mean(axis=1) - point).mean() < 0.05
    lower, upper = np.quantile(paths, [0.05, 0.95], axis=1)
    coverage = ((y >= lower) & (y <= upper)).mean(axis=0)
    assert ((coverage > 0.84) & (coverage < 0.96)).all(), coverage


def test_student_t_learns_heavy_tails():
    noise = NOISE * np.random.default_rng(6).standard_t(2.5, size=2400)
    x, y = toy(noise)
    keras.backend.clear_session()
    set_seed(2)
    network = build_network(spec("student_t"), LOOKBACK, 1, HORIZON)
    network.fit(x, y, epochs=5, batch_size=64, verbose=0)
    df = deepar.predictive(network, x[-300:], y[-300:])["df"]
    assert (df > 2).all() and np.median(df) < 4, np.median(df)  # t(2.5) noise (Gaussian noise gives about 6 here)
    paths = deepar.sample(network, x[-20:], 200, seed=1)
    assert np.isfinite(paths).all()


# ------------------------------------------------------------------ saving and the forecaster contract


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_save_load_safe_mode_repeats_point_forecasts_and_samples(likelihood, tmp_path):
    keras.backend.clear_session()
    network = build_network(spec(likelihood, "revin", layers=2, dropout=0.1), LOOKBACK, 3, HORIZON, target_index=1)
    x = np.random.default_rng(7).normal(size=(40, LOOKBACK, 3)).astype(np.float32)
    y = np.random.default_rng(8).normal(size=(40, HORIZON)).astype(np.float32)
    network.fit(x, y, epochs=1, batch_size=20, verbose=0)
    network.save(tmp_path / "deepar.keras")
    loaded = keras.models.load_model(tmp_path / "deepar.keras", safe_mode=True)
    assert isinstance(loaded, deepar.DeepARNetwork)
    np.testing.assert_array_equal(np.asarray(loaded.predict_on_batch(x)), np.asarray(network.predict_on_batch(x)))
    np.testing.assert_array_equal(deepar.sample(loaded, x[:4], 10, seed=3), deepar.sample(network, x[:4], 10, seed=3))


def test_neural_forecaster_predicts_samples_and_round_trips(tmp_path):
    cfg = from_dict({"seed": 3, "data": {"features": ["x1"], "length": 300}, "window": {"lookback": 16, "horizon": 4},
                     "training": {"epochs": 2, "patience": 5, "verbose": 0}, "tuning": {"strategy": "none"}})
    frame, _ = make_synthetic(300, 0.3, seed=3)
    prepared = prepare(frame[["x1", "target"]], cfg)
    forecaster = NeuralForecaster(spec("gaussian", "last"), cfg.training, seed=3).fit(prepared)
    assert forecaster.get_tag("samples") and not forecaster.get_tag("quantiles")
    assert np.isfinite(forecaster.history_["val_loss"]).all() and "val_nll" in forecaster.history_
    x, _ = prepared.windows("test", slice(0, 5))
    paths = forecaster.predict_samples(x, 20, seed=4)
    assert paths.shape == (5, 20, 4)
    np.testing.assert_array_equal(paths, forecaster.predict_samples(x, 20, seed=4))
    loaded = load(forecaster.save(tmp_path / "deepar"))
    np.testing.assert_array_equal(loaded.predict(x), forecaster.predict(x))
    np.testing.assert_array_equal(loaded.predict_samples(x, 20, seed=4), paths)


# ------------------------------------------------------------------ tuning


def test_tuning_space_searches_deepar_and_its_likelihood():
    cfg = from_dict({"tuning": {"space": {"architecture": ["lstm", "deepar"],
                                          "deepar.likelihood": ["gaussian", "student_t"]}}})
    space = search_space(cfg)
    assert space.architectures == ("lstm", "deepar") and space.searches_architecture
    param = space.params_for("deepar")[-1]
    assert (param.name, param.architecture, param.choices) == ("deepar.likelihood", "deepar", ("gaussian", "student_t"))
    values = space.values({"architecture": "deepar", "units": 32, "deepar.likelihood": "student_t"})
    trial = ModelSpec.from_config(cfg, values=values)
    assert trial.architecture == "deepar" and trial.options["likelihood"] == "student_t" and trial.units == 32
    lstm = space.values({"architecture": "lstm", "units": 32, "deepar.likelihood": "student_t"})
    assert not [k for k in lstm if k.startswith("deepar.")]
    cfg_trial = from_dict({"seed": 3, "data": {"features": ["x1"], "length": 300},
                           "window": {"lookback": 16, "horizon": 4}, "model": {"units": 8},
                           "tuning": {"space": {"architecture": ["lstm", "deepar"], "units": 8,
                                                "deepar.likelihood": ["gaussian", "student_t"]}, "patience": 2}})
    frame, _ = make_synthetic(300, 0.3, seed=3)
    result = train_trial({"architecture": "deepar", "deepar.likelihood": "student_t"},
                         prepare(frame[["x1", "target"]], cfg_trial), cfg_trial, epochs=2)
    assert np.isfinite(result.val_loss) and result.val_loss > 0  # an MSE, comparable with the LSTM's objective
    with pytest.raises(ConfigError, match="deepar.likelihood"):
        search_space(from_dict({"tuning": {"space": {"architecture": ["lstm", "deepar"],
                                                     "deepar.likelihood": ["gaussian", "laplace"]}}}))
