"""Long series in bounded memory: float32 storage, windows gathered on demand, batched baselines equal to unbatched."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from lstmkit.config import from_dict
from lstmkit.data import windows as preprocessing
from lstmkit.data.synthetic import make_synthetic
from lstmkit.data.windows import prepare
from lstmkit.models.baselines.autoregressive import AutoRegressive
from lstmkit.models.baselines.linear import LinearWindow, NormalEquations
from lstmkit.models.metrics import metric_report, metrics


@pytest.fixture(scope="module")
def prepared():
    frame, _ = make_synthetic(600, 0.3, seed=3)
    cfg = from_dict({"data": {"features": ["x1", "x2"]}, "window": {"lookback": 12, "horizon": 3},
                     "evaluation": {"seasonal_period": 24}})
    return prepare(frame.astype(np.float32), cfg)


def test_prepared_holds_no_float64_copy_of_the_series():
    frame, _ = make_synthetic(600, 0.3, seed=3)
    frame = frame.astype(np.float32)  # as read_series returns it
    cfg = from_dict({"data": {"features": ["x1", "x2", "x3"]}, "window": {"lookback": 12, "horizon": 3}})
    p = prepare(frame, cfg)
    assert p.scaled.dtype == np.float32 and p.original.dtype == np.float32
    assert not any(isinstance(v, np.ndarray) and v is not p.scaled for v in vars(p).values())  # scaled is the only copy
    np.testing.assert_allclose(p.original, frame[p.columns].to_numpy(), rtol=1e-5)  # recovered by the scaler's inverse


def test_chunked_scaler_fit_and_transform_match_a_one_shot_fit(prepared, monkeypatch):
    monkeypatch.setattr(preprocessing, "CHUNK_ROWS", 7)  # many chunks
    from sklearn.preprocessing import StandardScaler

    a, b = prepared.bounds.train
    chunked = preprocessing._fit_in_chunks(StandardScaler(), prepared.original[a:b])
    whole = StandardScaler().fit(prepared.original[a:b].astype(float))
    np.testing.assert_allclose(chunked.mean_, whole.mean_, rtol=1e-9)
    np.testing.assert_allclose(chunked.scale_, whole.scale_, rtol=1e-9)
    out = preprocessing.transform_in_chunks(whole, prepared.original)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, whole.transform(prepared.original.astype(float)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_batches_windows_and_targets_equal_the_full_arrays(prepared, split):
    x, y = prepared.arrays(split)
    parts = list(prepared.batches(split, 7))
    assert len(parts) == -(-len(x) // 7)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    np.testing.assert_array_equal(prepared.targets(split), y)
    pick = np.array([len(x) - 1, 0, 5])
    xs, ys = prepared.windows(split, pick)
    np.testing.assert_array_equal(xs, x[pick])
    np.testing.assert_array_equal(ys, y[pick])
    with pytest.raises(IndexError, match=f"0..{len(x) - 1} for the {split} split"):
        prepared.windows(split, [len(x)])


@pytest.mark.parametrize("alpha", [0.0, 0.1, 10.0])
def test_normal_equations_in_batches_equal_sklearn_ridge(alpha):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 12)) + 50.0  # far from zero: the centring must stay exact
    y = x[:, :3] @ rng.normal(size=(3, 2)) + rng.normal(scale=0.1, size=(500, 2)) + 7.0
    eq = NormalEquations()
    for a in range(0, len(x), 7):
        eq.add(x[a:a + 7], y[a:a + 7])
    coef, intercept = eq.solve(alpha)
    ref = Ridge(alpha=alpha).fit(x, y)
    np.testing.assert_allclose(coef.T, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(intercept, ref.intercept_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("last_value", [False, True])
def test_batched_linear_baseline_equals_sklearn_ridge_on_all_windows(prepared, last_value):
    model = LinearWindow([0.1, 1.0, 10.0], last_value=last_value, batch_size=7).fit(prepared)
    x, y = prepared.arrays("train")
    x, y = x.astype(float), y.astype(float)
    level = x[:, -1:, :] if last_value else np.zeros_like(x[:, -1:, :])
    t = prepared.target_index

    def design(x, y, level):
        return (x - level).reshape(len(x), -1), y - level[:, :, t]

    val = [a.astype(float) for a in prepared.arrays("val")]
    val_level = val[0][:, -1:, :] if last_value else np.zeros_like(val[0][:, -1:, :])
    xv, yv = design(*val, val_level)
    scores = {a: np.mean((Ridge(alpha=a).fit(*design(x, y, level)).predict(xv) - yv) ** 2) for a in model.alphas}
    assert model.alpha_ == min(scores, key=scores.get)
    ref = Ridge(alpha=model.alpha_).fit(*design(x, y, level))
    xt = prepared.arrays("test")[0].astype(float)
    test_level = xt[:, -1:, :] if last_value else np.zeros_like(xt[:, -1:, :])
    expected = ref.predict(design(xt, np.zeros((len(xt), 3)), test_level)[0]) + test_level[:, :, t]
    np.testing.assert_allclose(model.predict_split(prepared, "test"), expected, rtol=1e-6, atol=1e-6)  # float32 level differences


def test_autoreg_parameters_equal_statsmodels_on_every_training_row(prepared, monkeypatch):
    from statsmodels.tsa.ar_model import AutoReg

    from lstmkit.models.baselines import autoregressive as baselines

    monkeypatch.setattr(baselines, "CHUNK", 50)  # the lag matrix in many chunks
    ar = AutoRegressive(max_lag=6).fit(prepared)
    y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index].astype(float)
    np.testing.assert_allclose(ar.params_, AutoReg(y, lags=ar.lags_, trend="c").fit().params, rtol=1e-8, atol=1e-10)


def test_autoreg_selects_its_order_on_the_recent_rows_only(prepared):
    full = AutoRegressive(max_lag=6).fit(prepared)
    capped = AutoRegressive(max_lag=6, select_rows=60).fit(prepared)
    assert full.lags_ >= 1 and capped.lags_ >= 1  # both select; the cap only bounds the rows statsmodels sees
    assert AutoRegressive(max_lag=6, select_rows=10**9).fit(prepared).lags_ == full.lags_


def test_metric_report_per_step_equals_metrics_over_all_values(prepared):
    y = prepared.targets("test").astype(float)
    rng = np.random.default_rng(1)
    yhat = y + rng.normal(scale=0.3, size=y.shape)
    report = metric_report(y, yhat, prepared, 24)
    overall = metrics(y, yhat, report["scaled"]["mae"] / report["scaled"]["mase"])
    for m in overall:
        assert report["scaled"][m] == pytest.approx(overall[m], rel=1e-9)
    orig = metrics(prepared.to_original(y), prepared.to_original(yhat), 1.0)
    for m in ("mse", "rmse", "mae", "mape", "smape"):
        assert report["original"][m] == pytest.approx(orig[m], rel=1e-9)


def test_long_split_is_shuffled_by_blocks_and_covers_every_window_once_per_pass(prepared, monkeypatch):
    monkeypatch.setattr(preprocessing, "SHUFFLE_WINDOWS", 64)  # force the block shuffle on this short series
    monkeypatch.setattr(preprocessing, "SHUFFLE_BLOCKS", 16)
    n = prepared.n_windows("train")
    ds = prepared.dataset("train", batch_size=50, shuffle=True, seed=1)
    x_all, y_all = prepared.arrays("train")
    seen = []
    for _ in range(2):
        ys = np.concatenate([b[1].numpy() for b in ds])
        assert len(ys) == n
        # every window exactly once: match each target row back to its window
        order = [int(np.flatnonzero((y_all == row).all(axis=1))[0]) for row in ys]
        assert sorted(order) == list(range(n))
        assert order != sorted(order)
        seen.append(order)
    assert seen[0] != seen[1]  # reshuffled at each pass
    repeated = prepared.dataset("train", batch_size=50, shuffle=True, seed=1, repeat=True)
    assert sum(1 for _ in repeated.take(-(-n // 50) + 3)) == -(-n // 50) + 3  # endless with repeat


def test_steps_per_epoch_caps_batches_only_below_a_full_pass(prepared):
    from lstmkit.config import ConfigError
    from lstmkit.models.neural.forecaster import steps_per_epoch

    full = -(-prepared.n_windows("train") // 32)
    assert steps_per_epoch(prepared, 32, from_dict({}).training) is None  # default 0: every window
    assert steps_per_epoch(prepared, 32, from_dict({"training": {"steps_per_epoch": 3}}).training) == 3
    assert steps_per_epoch(prepared, 32, from_dict({"training": {"steps_per_epoch": full}}).training) is None
    with pytest.raises(ConfigError, match="training.steps_per_epoch"):
        from_dict({"training": {"steps_per_epoch": -1}})
