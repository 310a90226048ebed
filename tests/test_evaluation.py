"""Evaluation: metrics against sklearn and hand computations, baselines on toy series, the evaluation stage.

Baseline tests use the row-encoded toy series of conftest (target value = row number, identity scalers):
100 rows, train 0-59, val 60-79, test 80-99.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from scipy.linalg import LinAlgWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.config import from_dict
from lstmkit.evaluation import (
    METRICS,
    LinearWindow,
    Persistence,
    SeasonalNaive,
    baselines,
    evaluate,
    load_evaluation,
    mase_scale,
    metric_report,
    metrics,
    residual_frame,
    save_evaluation,
    smape,
)
from lstmkit.preprocessing import prepare
from lstmkit.runfolder import RunFolder

Y = np.array([3.0, -1.5, 2.0, 7.0, 0.5, 10.0])
YHAT = np.array([2.5, -0.5, 2.0, 8.0, 1.0, 7.0])


# ------------------------------------------------------------------ metrics


def test_metrics_match_sklearn():
    m = metrics(Y, YHAT, scale=2.0)
    assert m["mse"] == pytest.approx(mean_squared_error(Y, YHAT))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(Y, YHAT)))
    assert m["mae"] == pytest.approx(mean_absolute_error(Y, YHAT))
    assert m["mape"] == pytest.approx(100 * mean_absolute_percentage_error(Y, YHAT))
    assert set(m) == set(METRICS)


def test_metrics_hand_values():
    # errors 0.5, 1, 0, 1, 0.5, 3 -> mae 1, mse (0.25 + 1 + 0 + 1 + 0.25 + 9) / 6 = 11.5 / 6
    m = metrics(Y, YHAT, scale=2.0)
    assert m["mae"] == pytest.approx(1.0)
    assert m["mse"] == pytest.approx(11.5 / 6)
    assert m["mase"] == pytest.approx(0.5)


def test_metrics_flatten_two_dimensional_forecasts():
    assert metrics(Y.reshape(3, 2), YHAT.reshape(3, 2), 2.0) == metrics(Y, YHAT, 2.0)


def test_smape_hand_computed():
    # terms 2*1/3, 0, 0 (both zero), 2*2/6 -> mean 1/3 -> 33.33 %
    assert smape(np.array([1.0, 2.0, 0.0, 4.0]), np.array([2.0, 2.0, 0.0, 2.0])) == pytest.approx(100 / 3)


def test_smape_bounds():
    assert smape(np.array([-1.0, 5.0]), np.array([1.0, 5.0])) == pytest.approx(100.0)  # terms 2 and 0
    assert smape(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == 0.0


def test_mase_scale_hand_computed():
    train = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0])
    assert mase_scale(train, 1) == pytest.approx(9 / 5)   # |2|, |1|, |3|, |1|, |2|
    assert mase_scale(train, 2) == pytest.approx(6 / 4)   # |2-1|, |5-3|, |4-2|, |6-5|


def test_mase_scale_needs_more_than_one_period():
    with pytest.raises(ValueError, match="shorter than the seasonal period"):
        mase_scale(np.arange(24.0), 24)


def test_mase_is_mae_over_scale():
    m = metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 5.0]), scale=0.5)
    assert m["mase"] == pytest.approx(2.0)


# ------------------------------------------------------------------ metric_report per horizon

OFFSETS = np.array([0.1, -0.2, 0.3])  # scaled error of each horizon step
PERIOD = 4


@pytest.fixture(scope="module")
def linear_prepared():
    """Standard-scaled toy series whose target is 2*row + 5 (so the seasonal MASE scale is 2*PERIOD)."""
    rows = np.arange(120, dtype=float)
    frame = pd.DataFrame({"x1": np.sin(rows), "target": 2 * rows + 5},
                         index=pd.date_range("2024-01-01", periods=120, freq="h"))
    cfg = from_dict({"data": {"features": ["x1"]}, "split": {"train": 80, "val": 20, "test": 20},
                     "window": {"lookback": 6, "horizon": 3}})
    return prepare(frame, cfg)


@pytest.fixture(scope="module")
def report(linear_prepared):
    _, y = linear_prepared.arrays("test")
    y = y.astype(float)
    return metric_report(y, y + OFFSETS, linear_prepared, PERIOD), y


def test_metric_report_overall_scaled(report):
    rep, _ = report
    assert rep["scaled"]["mae"] == pytest.approx(0.2)
    assert rep["scaled"]["rmse"] == pytest.approx(np.sqrt(np.mean(OFFSETS**2)))


def test_metric_report_per_horizon_scaled(report):
    rep, _ = report
    per = rep["per_horizon"]["scaled"]
    assert set(per) == set(METRICS)
    assert all(len(per[m]) == 3 for m in METRICS)
    np.testing.assert_allclose(per["mae"], np.abs(OFFSETS), rtol=1e-5)
    np.testing.assert_allclose(per["mse"], OFFSETS**2, rtol=1e-4)


def test_metric_report_original_units_scale_by_training_std(report, linear_prepared):
    rep, _ = report
    sigma = 2 * np.arange(80.0).std()  # std of the training target 2*row + 5
    np.testing.assert_allclose(rep["per_horizon"]["original"]["mae"], np.abs(OFFSETS) * sigma, rtol=1e-5)
    assert rep["original"]["rmse"] == pytest.approx(sigma * np.sqrt(np.mean(OFFSETS**2)), rel=1e-5)


def test_metric_report_mase_uses_training_seasonal_naive_scale(report):
    rep, _ = report
    sigma = 2 * np.arange(80.0).std()
    # a row step of 1 changes the target by 2, so the seasonal-naive MAE over one period is 2*PERIOD
    assert rep["original"]["mase"] == pytest.approx(0.2 * sigma / (2 * PERIOD), rel=1e-5)
    assert rep["scaled"]["mase"] == pytest.approx(0.2 / (2 * PERIOD / sigma), rel=1e-5)
    np.testing.assert_allclose(rep["per_horizon"]["original"]["mase"], np.abs(OFFSETS) * sigma / (2 * PERIOD), rtol=1e-5)


def test_metric_report_mape_per_horizon_in_original_units(report, linear_prepared):
    rep, y = report
    y_orig, f_orig = linear_prepared.to_original(y), linear_prepared.to_original(y + OFFSETS)
    expected = [100 * mean_absolute_percentage_error(y_orig[:, h], f_orig[:, h]) for h in range(3)]
    np.testing.assert_allclose(rep["per_horizon"]["original"]["mape"], expected, rtol=1e-9)


# ------------------------------------------------------------------ baselines


def test_persistence_repeats_the_origin_value(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    pred = Persistence().predict(p, "test")
    assert pred.shape == (18, 3)
    np.testing.assert_array_equal(pred[0], [79, 79, 79])
    np.testing.assert_array_equal(pred[-1], [96, 96, 96])
    np.testing.assert_array_equal(pred[:, 0], np.arange(79, 97))


def test_persistence_error_on_a_unit_slope_is_the_step(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    _, y = p.arrays("val")
    np.testing.assert_array_equal(y - Persistence().predict(p, "val"), np.tile([1, 2, 3], (18, 1)))


def test_seasonal_naive_horizon_longer_than_period(row_prepared):
    p = row_prepared(lookback=8, horizon=6)
    pred = SeasonalNaive(period=4).predict(p, "test")
    # origin 79, steps 1..6 -> same phase rows 76, 77, 78, 79, then 76, 77 again (two seasons back is not needed)
    np.testing.assert_array_equal(pred[0], [76, 77, 78, 79, 76, 77])
    np.testing.assert_array_equal(pred[-1], [90, 91, 92, 93, 90, 91])
    assert pred.shape == (15, 6)


def test_seasonal_naive_period_longer_than_lookback(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    pred = SeasonalNaive(period=12).predict(p, "test")
    np.testing.assert_array_equal(pred[0], [68, 69, 70])  # before the window's first input row 72
    np.testing.assert_array_equal(pred[:, 0], np.arange(79, 97) - 11)


def test_seasonal_naive_reaching_before_the_series_raises(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    with pytest.raises(ValueError, match="reaches before the first row"):
        SeasonalNaive(period=12).predict(p, "train")  # origin 7 + 1 - 12 < 0


def test_seasonal_naive_never_uses_rows_after_the_origin(row_prepared):
    p = row_prepared(lookback=8, horizon=10)
    pred = SeasonalNaive(period=3).predict(p, "test")
    origins = p.origins("test")[:, None]
    assert (pred <= origins).all() and (pred > origins - 3).all()
    np.testing.assert_array_equal(pred % 3, (p.target_rows("test")) % 3)  # same phase as the target row


def test_seasonal_naive_is_exact_on_a_periodic_series(row_prepared):
    p = row_prepared(lookback=8, horizon=6, target_values=np.arange(100) % 24 * 1.5)
    _, y = p.arrays("test")
    np.testing.assert_array_equal(SeasonalNaive(period=24).predict(p, "test"), y)
    assert np.abs(SeasonalNaive(period=23).predict(p, "test") - y).max() > 1


def sinusoid_prepared(row_prepared):
    """Target = sum of two sinusoids: each future value is an exact linear function of the last four."""
    t = np.arange(300)
    y = np.sin(2 * np.pi * t / 24) + 0.5 * np.cos(2 * np.pi * t / 7 + 0.3)
    return row_prepared(n=300, train=200, val=50, lookback=8, horizon=3, target_values=y,
                        feature_values=np.cos(2 * np.pi * t / 10))


def test_linear_window_recovers_an_exact_linear_relation(row_prepared):
    p = sinusoid_prepared(row_prepared)
    model = LinearWindow(alphas=[1e-6, 1e-2, 1.0, 100.0]).fit(p)
    _, y = p.arrays("test")
    pred = model.predict(p, "test")
    assert pred.shape == y.shape
    assert np.sqrt(np.mean((pred - y) ** 2)) < 1e-3 * y.std()
    assert model.alpha_ == 1e-6


def manual_windows(p, origins):
    """Flattened (time-major) input windows and horizon targets built with plain indexing."""
    x = np.stack([p.scaled[o - p.lookback + 1:o + 1].ravel() for o in origins])
    y = np.stack([p.scaled[o + 1:o + p.horizon + 1, p.target_index] for o in origins])
    return x, y


def test_linear_window_picks_alpha_on_validation(row_prepared):
    rng = np.random.default_rng(0)
    p = row_prepared(n=200, train=60, val=70, lookback=8, horizon=2,
                     target_values=rng.normal(size=200), feature_values=rng.normal(size=200))
    alphas = [0.01, 1.0, 100.0, 10000.0]
    model = LinearWindow(alphas=alphas).fit(p)
    xt, yt = manual_windows(p, range(7, 58))      # train origins 7..57 (targets up to row 59)
    xv, yv = manual_windows(p, range(59, 128))    # val origins 59..127 (targets 60..129)
    val_mse = {a: mean_squared_error(yv, Ridge(alpha=a).fit(xt, yt).predict(xv)) for a in alphas}
    assert model.alpha_ == min(val_mse, key=val_mse.get)
    assert model.alpha_ > min(alphas)  # pure noise: shrinkage wins, so the choice really comes from validation
    xs, _ = manual_windows(p, range(129, 198))
    np.testing.assert_allclose(model.predict(p, "test"), Ridge(alpha=model.alpha_).fit(xt, yt).predict(xs), rtol=1e-6)


def test_baselines_follow_the_config():
    cfg = from_dict({"evaluation": {"seasonal_period": 12, "ridge_alphas": [0.5, 5.0]}})
    names = [b.name for b in baselines(cfg)]
    assert names == ["persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    assert baselines(cfg)[1].period == 12 and baselines(cfg)[2].alphas == baselines(cfg)[3].alphas == [0.5, 5.0]
    assert baselines(cfg)[3].last_value and not baselines(cfg)[2].last_value and baselines(cfg)[4].max_lag == 24


# ------------------------------------------------------------------ the evaluation stage


def persistence_keras_model(lookback: int, channels: int, horizon: int, target_index: int) -> keras.Model:
    """A Keras 'model' that forecasts the last observed target for every step (persistence)."""
    inputs = keras.Input((lookback, channels))
    last = keras.layers.Lambda(lambda x: x[:, -1, target_index:target_index + 1])(inputs)
    outputs = keras.layers.Lambda(lambda v: keras.ops.repeat(v, horizon, axis=1))(last)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def evaluation(row_prepared):
    p = row_prepared(lookback=8, horizon=3, feature_values=np.sin(np.arange(100)))
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "evaluation": {"seasonal_period": 4}})
    with warnings.catch_warnings():  # a unit-slope series makes the linear baseline's windows collinear (by design)
        warnings.simplefilter("ignore", LinAlgWarning)
        return evaluate(persistence_keras_model(8, 2, 3, 1), p, cfg, noise_std=0.5), p


def test_evaluate_scores_model_and_baselines_on_the_same_windows(evaluation):
    ev, p = evaluation
    assert list(ev.forecasts) == ["lstm", "persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    np.testing.assert_array_equal(ev.actual, p.arrays("test")[1])
    np.testing.assert_allclose(ev.forecasts["lstm"], ev.forecasts["persistence"])
    assert ev.metrics["model"]["original"] == pytest.approx(ev.metrics["baselines"]["persistence"]["original"])


def test_a_one_step_horizon_gives_every_forecaster_one_column():
    """Ridge drops the output axis when the horizon is 1; forecasts must still be (windows, 1), not (windows, windows)."""
    from lstmkit.data import make_synthetic

    frame, _ = make_synthetic(600, 0.3, seed=2)
    cfg = from_dict({"window": {"lookback": 12, "horizon": 1}})
    p = prepare(frame, cfg)
    ev = evaluate(persistence_keras_model(12, 4, 1, 3), p, cfg)
    n = p.n_windows("test")
    assert {name: f.shape for name, f in ev.forecasts.items()} == {name: (n, 1) for name in ev.forecasts}
    assert ev.metrics["baselines"]["linear"]["scaled"]["rmse"] < ev.metrics["baselines"]["persistence"]["scaled"]["rmse"]


def test_train_val_fit_refits_the_baselines_with_their_validated_choices():
    from sklearn.linear_model import Ridge

    from lstmkit.data import make_synthetic
    from lstmkit.preprocessing import prepare

    frame, _ = make_synthetic(600, 0.3, seed=2)
    values = {"data": {"features": ["x1"]}, "window": {"lookback": 12, "horizon": 3}}
    plain, refit = from_dict(values), from_dict(values, {"training.fit_on": "train+val"})
    p = prepare(frame[["x1", "target"]], plain)
    model = persistence_keras_model(12, 2, 3, 1)
    a, b = evaluate(model, p, plain), evaluate(model, p, refit)
    assert (a.metrics["meta"]["fit_on"], b.metrics["meta"]["fit_on"]) == ("train", "train+val")
    for name in ("lstm", "persistence", "seasonal_naive"):  # nothing to refit
        np.testing.assert_array_equal(a.forecasts[name], b.forecasts[name])
    for name in ("linear", "nlinear", "autoreg"):
        assert not np.allclose(a.forecasts[name], b.forecasts[name])
    assert a.metrics["meta"]["linear_alpha"] == b.metrics["meta"]["linear_alpha"]  # chosen on validation both times
    assert a.metrics["meta"]["autoreg_lags"] == b.metrics["meta"]["autoreg_lags"]
    merged = p.train_val()
    x, y = merged.arrays("train")
    expected = Ridge(alpha=b.metrics["meta"]["linear_alpha"]).fit(x.reshape(len(x), -1).astype(float), y.astype(float))
    xt, _ = p.arrays("test")
    np.testing.assert_allclose(b.forecasts["linear"], expected.predict(xt.reshape(len(xt), -1).astype(float)), rtol=1e-6)


def test_evaluate_meta(evaluation):
    ev, p = evaluation
    meta = ev.metrics["meta"]
    assert meta["windows"] == 18 and meta["horizon"] == 3 and meta["lookback"] == 8 and meta["seasonal_period"] == 4
    assert meta["first_origin"] == str(p.index[79]) and meta["last_origin"] == str(p.index[96])
    assert meta["noise_std"] == 0.5
    # persistence on a unit slope: errors 1, 2, 3 -> rmse sqrt(14/3)
    assert meta["rmse_to_noise_floor"] == pytest.approx(np.sqrt(14 / 3) / 0.5)
    assert meta["linear_alpha"] in baselines(from_dict({}))[2].alphas


def test_evaluation_tables(evaluation):
    ev, _ = evaluation
    table = ev.table()
    assert list(table.index) == ["lstm", "persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    assert list(table.columns) == list(METRICS)
    per = ev.per_horizon("mae")
    assert list(per.index) == [1, 2, 3]
    np.testing.assert_allclose(per["lstm"], [1, 2, 3])
    np.testing.assert_allclose(per["seasonal_naive"], [4, 4, 4])  # one period back on a unit slope: always 4 off


def test_linear_baseline_is_exact_on_a_unit_slope(evaluation):
    ev, _ = evaluation
    assert ev.metrics["baselines"]["linear"]["original"]["rmse"] < 0.05


def test_residual_frame_indexes_by_target_time(evaluation):
    ev, p = evaluation
    res = residual_frame(ev, p, step=2)
    assert res.index[0] == p.index[81]
    np.testing.assert_allclose(res["residual"], 2.0)
    np.testing.assert_allclose(res["actual"], np.arange(81, 99))


def test_save_and_load_evaluation_round_trip(evaluation, tmp_path):
    ev, _ = evaluation
    run = RunFolder(tmp_path)
    run.metrics_file.parent.mkdir(parents=True)
    save_evaluation(ev, run)
    back = load_evaluation(run)
    assert back.metrics == ev.metrics
    assert set(back.forecasts) == set(ev.forecasts)
    for name in ev.forecasts:
        np.testing.assert_array_equal(back.forecasts[name], ev.forecasts[name])
    np.testing.assert_array_equal(back.actual, ev.actual)
    assert sorted(p.name for p in run.metrics_file.parent.iterdir()) == ["metrics.json", "predictions.npz"]
