"""Evaluation: metrics against sklearn and hand computations, baselines on toy series, the evaluation stage.

Baseline tests use the row-encoded toy series of conftest (target value = row number, identity scalers):
100 rows, train 0-59, val 60-79, test 80-99.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import LinAlgWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.config import from_dict
from lstmkit.data.windows import prepare
from lstmkit.models.base import Forecaster
from lstmkit.models.baselines import baselines
from lstmkit.models.baselines.linear import LinearWindow
from lstmkit.models.baselines.persistence import Persistence
from lstmkit.models.baselines.seasonal_naive import SeasonalNaive
from lstmkit.models.metrics import METRICS, diebold_mariano, mase_scale, metric_report, metrics, newey_west_variance, smape
from lstmkit.report.evaluation import comparison_display, comparison_summary, headline
from lstmkit.runs.folder import RunFolder
from lstmkit.stages.evaluation import (
    comparison_table,
    ensemble_members,
    evaluate,
    load_evaluation,
    metrics_table,
    residual_frame,
    save_evaluation,
)

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
    pred = Persistence().fit(p).predict_split(p, "test")
    assert pred.shape == (18, 3)
    np.testing.assert_array_equal(pred[0], [79, 79, 79])
    np.testing.assert_array_equal(pred[-1], [96, 96, 96])
    np.testing.assert_array_equal(pred[:, 0], np.arange(79, 97))


def test_persistence_error_on_a_unit_slope_is_the_step(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    _, y = p.arrays("val")
    np.testing.assert_array_equal(y - Persistence().fit(p).predict_split(p, "val"), np.tile([1, 2, 3], (18, 1)))


def test_seasonal_naive_horizon_longer_than_period(row_prepared):
    p = row_prepared(lookback=8, horizon=6)
    pred = SeasonalNaive(period=4).fit(p).predict_split(p, "test")
    # origin 79, steps 1..6 -> same phase rows 76, 77, 78, 79, then 76, 77 again (two seasons back is not needed)
    np.testing.assert_array_equal(pred[0], [76, 77, 78, 79, 76, 77])
    np.testing.assert_array_equal(pred[-1], [90, 91, 92, 93, 90, 91])
    assert pred.shape == (15, 6)


def test_seasonal_naive_period_longer_than_lookback(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    pred = SeasonalNaive(period=12).fit(p).predict_split(p, "test")
    np.testing.assert_array_equal(pred[0], [68, 69, 70])  # before the window's first input row 72
    np.testing.assert_array_equal(pred[:, 0], np.arange(79, 97) - 11)


def test_seasonal_naive_reaching_before_the_series_raises(row_prepared):
    p = row_prepared(lookback=8, horizon=3)
    with pytest.raises(ValueError, match="reaches before the first row"):
        SeasonalNaive(period=12).fit(p).predict_split(p, "train")  # origin 7 + 1 - 12 < 0


def test_seasonal_naive_never_uses_rows_after_the_origin(row_prepared):
    p = row_prepared(lookback=8, horizon=10)
    pred = SeasonalNaive(period=3).fit(p).predict_split(p, "test")
    origins = p.origins("test")[:, None]
    assert (pred <= origins).all() and (pred > origins - 3).all()
    np.testing.assert_array_equal(pred % 3, (p.target_rows("test")) % 3)  # same phase as the target row


def test_seasonal_naive_is_exact_on_a_periodic_series(row_prepared):
    p = row_prepared(lookback=8, horizon=6, target_values=np.arange(100) % 24 * 1.5)
    _, y = p.arrays("test")
    np.testing.assert_array_equal(SeasonalNaive(period=24).fit(p).predict_split(p, "test"), y)
    assert np.abs(SeasonalNaive(period=23).fit(p).predict_split(p, "test") - y).max() > 1


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
    pred = model.predict_split(p, "test")
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
    np.testing.assert_allclose(model.predict_split(p, "test"), Ridge(alpha=model.alpha_).fit(xt, yt).predict(xs), rtol=1e-6)


def test_baselines_follow_the_config():
    cfg = from_dict({"evaluation": {"seasonal_period": 12, "ridge_alphas": [0.5, 5.0]}})
    names = [b.name for b in baselines(cfg)]
    assert names == ["persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    assert baselines(cfg)[1].period == 12 and baselines(cfg)[2].alphas == baselines(cfg)[3].alphas == [0.5, 5.0]
    assert baselines(cfg)[3].last_value and not baselines(cfg)[2].last_value and baselines(cfg)[4].max_lag == 24


# ------------------------------------------------------------------ Diebold-Mariano


def test_diebold_mariano_hand_computed_one_step():
    # d = e1^2 - e2^2 = 0, 3, 8, 15: mean 6.5, deviations -6.5, -3.5, 1.5, 8.5 -> gamma0 = 129/4 = 32.25;
    # DM = 6.5 / sqrt(32.25 / 4) = 2.28916; HLN factor sqrt((n + 1 - 2h + h(h-1)/n) / n) = sqrt(3/4)
    result = diebold_mariano(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), horizon=1)
    assert result["statistic"] == pytest.approx(2.28916 * np.sqrt(0.75), rel=1e-5)
    assert result["statistic"] == pytest.approx(1.98247, rel=1e-5)
    assert result["mean_difference"] == pytest.approx(6.5) and result["n"] == 4
    from scipy import stats

    assert result["p_value"] == pytest.approx(2 * stats.t.sf(1.98247, df=3), rel=1e-4)
    assert 0.1 < result["p_value"] < 0.2  # four points: not significant at 5%


def test_newey_west_variance_hand_computed():
    d = np.array([1.0, -1.0, 2.0, 0.0])  # mean 0.5; deviations 0.5, -1.5, 1.5, -0.5
    gamma0 = (0.25 + 2.25 + 2.25 + 0.25) / 4
    gamma1 = (0.5 * -1.5 + -1.5 * 1.5 + 1.5 * -0.5) / 4
    assert newey_west_variance(d, 0) == pytest.approx(gamma0)
    assert newey_west_variance(d, 1) == pytest.approx(gamma0 + 2 * 0.5 * gamma1)  # Bartlett weight 1 - 1/2


def test_diebold_mariano_matches_statsmodels_hac_mean_test():
    """Multi-step: the mean loss differential over its Newey-West (Bartlett, h-1 lags) standard error, as an OLS on
    a constant with HAC covariance computes it, times the HLN factor."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    n, h = 300, 4
    e1 = rng.normal(size=(n, h)).cumsum(axis=1) * 0.9  # errors correlated across steps, as multi-step ones are
    e2 = rng.normal(size=(n, h)).cumsum(axis=1)
    d = (e1**2).mean(axis=1) - (e2**2).mean(axis=1)
    fit = sm.OLS(d, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": h - 1, "use_correction": False})
    expected = fit.params[0] / fit.bse[0] * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(e1, e2, horizon=h)
    assert result["statistic"] == pytest.approx(expected, rel=1e-10)
    assert result["statistic"] < 0  # the first forecast's errors are smaller
    swapped = diebold_mariano(e2, e1, horizon=h)
    assert swapped["statistic"] == pytest.approx(-result["statistic"]) and swapped["p_value"] == pytest.approx(result["p_value"])


def test_diebold_mariano_edge_cases():
    e = np.random.default_rng(1).normal(size=(20, 3))
    same = diebold_mariano(e, e.copy(), horizon=3)
    assert same["statistic"] == 0 and same["p_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different shapes"):
        diebold_mariano(e, e[:10], horizon=3)
    rng = np.random.default_rng(2)  # clearly better forecasts over many windows: a tiny p-value
    y = rng.normal(size=500)
    assert diebold_mariano(y - (y + 0.1 * rng.normal(size=500)), y - rng.normal(size=500), 1)["p_value"] < 1e-6


# ------------------------------------------------------------------ the evaluation stage


@dataclass
class Offset(Forecaster):
    """Test forecaster: the last observed target plus a constant, with a given validation loss and seed."""

    offset: float = 0.0
    name: str = "offset"
    seed: int = 0
    val: float = 0.0

    def _fit(self, prepared) -> None:
        self.val_loss_ = self.val

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        return np.repeat(windows[:, -1, self.target_index_].astype(float)[:, None] + self.offset, self.horizon_, axis=1)


@pytest.fixture(scope="module")
def toy(row_prepared):
    p = row_prepared(lookback=8, horizon=3, feature_values=np.sin(np.arange(100)))
    cfg = from_dict({"window": {"lookback": 8, "horizon": 3}, "evaluation": {"seasonal_period": 4}})
    return p, cfg


def quiet_evaluate(*args, **kwargs):
    with warnings.catch_warnings():  # a unit-slope series makes the linear baseline's windows collinear (by design)
        warnings.simplefilter("ignore", LinAlgWarning)
        return evaluate(*args, **kwargs)


@pytest.fixture(scope="module")
def evaluation(toy):
    p, cfg = toy
    return quiet_evaluate(Offset(name="model").fit(p), p, cfg, noise_std=0.5), p


def test_evaluate_scores_model_and_baselines_on_the_same_windows(evaluation):
    ev, p = evaluation
    assert list(ev.forecasts) == ["model", "persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    np.testing.assert_array_equal(ev.actual, p.arrays("test")[1])
    np.testing.assert_allclose(ev.forecasts["model"], ev.forecasts["persistence"])
    assert ev.metrics["model"]["original"] == pytest.approx(ev.metrics["baselines"]["persistence"]["original"])
    assert ev.metrics["models"]["model"]["original"] == pytest.approx(ev.metrics["model"]["original"])
    assert ev.metrics["meta"]["selected"]["model"] == "model" and "ensemble" not in ev.metrics["models"]


def test_a_one_step_horizon_gives_every_forecaster_one_column():
    """Ridge drops the output axis when the horizon is 1; forecasts must still be (windows, 1), not (windows, windows)."""
    from lstmkit.data.synthetic import make_synthetic

    frame, _ = make_synthetic(600, 0.3, seed=2)
    cfg = from_dict({"window": {"lookback": 12, "horizon": 1}})
    p = prepare(frame, cfg)
    ev = evaluate(Offset(name="model").fit(p), p, cfg)
    n = p.n_windows("test")
    assert {name: f.shape for name, f in ev.forecasts.items()} == {name: (n, 1) for name in ev.forecasts}
    assert ev.metrics["baselines"]["linear"]["scaled"]["rmse"] < ev.metrics["baselines"]["persistence"]["scaled"]["rmse"]


def test_train_val_fit_refits_the_baselines_with_their_validated_choices():
    from lstmkit.data.synthetic import make_synthetic

    frame, _ = make_synthetic(600, 0.3, seed=2)
    values = {"data": {"features": ["x1"]}, "window": {"lookback": 12, "horizon": 3}}
    plain, refit = from_dict(values), from_dict(values, {"training.fit_on": "train+val"})
    p = prepare(frame[["x1", "target"]], plain)
    model = Offset(name="model").fit(p)
    a, b = evaluate(model, p, plain), evaluate(model, p, refit)
    assert (a.metrics["meta"]["fit_on"], b.metrics["meta"]["fit_on"]) == ("train", "train+val")
    for name in ("model", "persistence", "seasonal_naive"):  # nothing to refit
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
    baseline_mse = {k: v["scaled"]["mse"] for k, v in ev.metrics["baselines"].items()}
    assert meta["best_baseline"] == min(baseline_mse, key=baseline_mse.get) and meta["best_on_test"] == "model"
    assert meta["best_baseline"] in ("linear", "nlinear")  # both exact on a unit slope


def test_evaluation_tables(evaluation):
    ev, _ = evaluation
    table = ev.table()
    assert list(table.index) == ["model", "persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    assert list(table.columns) == list(METRICS)
    per = ev.per_horizon("mae")
    assert list(per.index) == [1, 2, 3]
    np.testing.assert_allclose(per["model"], [1, 2, 3])
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
    np.testing.assert_allclose(residual_frame(ev, p, step=1, name="seasonal_naive")["residual"], 4.0)


def test_save_and_load_evaluation_round_trip(evaluation, tmp_path):
    ev, _ = evaluation
    run = RunFolder(tmp_path)
    run.metrics_file.parent.mkdir(parents=True)
    save_evaluation(ev, run)
    back = load_evaluation(run)
    assert back.metrics == ev.metrics
    assert list(back.forecasts) == list(ev.forecasts)
    for name in ev.forecasts:
        np.testing.assert_array_equal(back.forecasts[name], ev.forecasts[name])
    np.testing.assert_array_equal(back.actual, ev.actual)
    np.testing.assert_array_equal(back.selected_forecast(), ev.selected)
    assert sorted(p.name for p in run.metrics_file.parent.iterdir()) == ["metrics.json", "predictions.npz"]


def test_predictions_keep_the_selected_seed_apart_from_the_mean_over_seeds(compared, tmp_path):
    ev, _ = compared
    run = RunFolder(tmp_path)
    save_evaluation(ev, run)
    back = load_evaluation(run)
    assert list(back.forecasts)[:4] == ["a", "b", "c", "ensemble"]
    np.testing.assert_array_equal(back.selected_forecast(), ev.selected)  # a's seed 7: last + 1
    np.testing.assert_allclose(back.forecasts["a"] - back.selected_forecast(), 0.5)  # a's mean over seeds: last + 1.5


# ------------------------------------------------------------------ several models and seeds, the ensemble


@pytest.fixture(scope="module")
def compared(toy):
    """Two models of two seeds each on the unit-slope series (persistence errors 1, 2, 3 per step):
    a = last + 1 (errors 0, 1, 2) and last + 2 (-1, 0, 1), validation 0.1 and 0.2: the best on validation;
    b = last + 3 (-2, -1, 0) and last + 2.5, validation 0.3 and 0.25; c = last (persistence), validation 0.9."""
    p, cfg = toy
    models = {"a": [Offset(1.0, "a", 7, 0.1).fit(p), Offset(2.0, "a", 8, 0.2).fit(p)],
              "b": [Offset(3.0, "b", 7, 0.3).fit(p), Offset(2.5, "b", 8, 0.25).fit(p)],
              "c": [Offset(0.0, "c", 7, 0.9).fit(p)]}
    return quiet_evaluate(models, p, cfg), models


def test_models_report_means_and_sd_over_seeds(compared):
    ev, _ = compared
    a = ev.metrics["models"]["a"]
    assert a["seeds"] == [7, 8] and a["val_loss"] == pytest.approx(0.15) and a["parameters"] == 0
    # MAE per seed: (0 + 1 + 2) / 3 = 1 and (1 + 0 + 1) / 3 = 2/3; MSE: 5/3 and 2/3
    assert a["scaled"]["mae"] == pytest.approx((1 + 2 / 3) / 2)
    assert a["scaled"]["mse"] == pytest.approx((5 / 3 + 2 / 3) / 2)
    assert a["sd"]["scaled"]["mae"] == pytest.approx(np.std([1, 2 / 3], ddof=1))
    assert a["sd"]["original"]["mse"] == pytest.approx(np.std([5 / 3, 2 / 3], ddof=1))
    np.testing.assert_allclose(a["per_horizon"]["scaled"]["mae"], [0.5, 0.5, 1.5])  # steps: |0|,|-1| ; |1|,|0| ; |2|,|1|
    assert ev.metrics["models"]["c"]["sd"] is None  # one seed: no spread
    np.testing.assert_allclose(ev.forecasts["a"] - ev.forecasts["c"], 1.5)  # the forecast kept: the mean over seeds


def test_selection_is_by_validation_not_test(compared):
    ev, _ = compared
    meta = ev.metrics["meta"]
    # a has the lowest mean validation loss (0.15): a is selected, with its best seed (7, validation 0.1)
    mse = {k: v["scaled"]["mse"] for k, v in ev.metrics["models"].items()}
    assert meta["selected"] == {"model": "a", "seed": 7, "criterion": "validation loss"}
    assert meta["best_on_test"] == min(mse, key=mse.get)
    assert ev.selected_name == "a"
    # `model` is the selected forecaster itself (seed 7: last + 1), not the mean over a's seeds
    assert ev.metrics["model"]["scaled"]["mae"] == pytest.approx(1.0)
    np.testing.assert_allclose(ev.selected - ev.forecasts["c"], 1.0)


def test_selection_ignores_a_better_test_score(toy):
    """A model with the best test error but a worse validation loss is not selected; the table says it did best."""
    p, cfg = toy
    models = {"val_best": [Offset(3.0, "val_best", 1, 0.1).fit(p)],     # errors -2, -1, 0: test MSE 5/3
              "test_best": [Offset(1.5, "test_best", 1, 0.5).fit(p)]}  # errors -0.5, 0.5, 1.5: test MSE 11/12
    ev = quiet_evaluate(models, p, from_dict(cfg.to_dict(), {"compare.ensemble": "none"}))
    meta = ev.metrics["meta"]
    assert meta["selected"]["model"] == "val_best" and meta["best_on_test"] == "test_best"
    assert ev.metrics["models"]["test_best"]["scaled"]["mse"] == pytest.approx(11 / 12)
    text = comparison_summary(ev.metrics)
    assert "selected model** is **val_best**" in text and "best on test (lowest test MSE) is **test_best**" in text
    assert "may differ" in text


def test_the_ensemble_averages_the_models(compared, toy):
    ev, models = compared
    ensemble = ev.metrics["models"]["ensemble"]
    assert ensemble["members"] == ["a", "b", "c"] and ensemble["how"] == "mean"
    np.testing.assert_allclose(ev.forecasts["ensemble"] - ev.forecasts["c"], (1.5 + 2.75 + 0.0) / 3)
    assert ensemble["sd"] is None and ensemble["parameters"] == 0
    assert list(ev.forecasts)[:4] == ["a", "b", "c", "ensemble"] and "ensemble" in ev.table().index
    p, cfg = toy
    top = quiet_evaluate(models, p, from_dict(cfg.to_dict(), {"compare.ensemble": "top_k", "compare.top_k": 2}))
    assert top.metrics["models"]["ensemble"]["members"] == ["a", "b"]  # validation 0.15 and 0.275; c's 0.9 is left out
    np.testing.assert_allclose(top.forecasts["ensemble"] - top.forecasts["c"], (1.5 + 2.75) / 2)
    none = quiet_evaluate(models, p, from_dict(cfg.to_dict(), {"compare.ensemble": "none"}))
    assert "ensemble" not in none.metrics["models"] and "ensemble" not in none.forecasts
    single = quiet_evaluate({"a": models["a"]}, p, cfg)
    assert "ensemble" not in single.metrics["models"]  # fewer than two models: no ensemble


def test_ensemble_members():
    losses = {"x": 0.3, "y": 0.1, "z": 0.2}
    assert ensemble_members(losses, "mean", 3) == ["x", "y", "z"]
    assert ensemble_members(losses, "top_k", 2) == ["y", "z"]
    assert ensemble_members(losses, "top_k", 1) == []  # an ensemble of one is not an ensemble
    assert ensemble_members(losses, "none", 3) == [] and ensemble_members({"x": 0.1}, "mean", 3) == []


def test_diebold_mariano_against_the_best_baseline(compared):
    ev, _ = compared
    best = ev.metrics["meta"]["best_baseline"]
    assert best in ("linear", "nlinear")  # exact on a unit slope
    for name in ("a", "b", "c", "ensemble"):
        dm = ev.metrics["models"][name]["dm"]
        expected = diebold_mariano(ev.actual - ev.forecasts[name], ev.actual - ev.forecasts[best], 3)
        assert dm["against"] == best and dm["p_value"] == pytest.approx(expected["p_value"]) and dm["p_value"] < 0.05
        # against an exact baseline a constant offset's loss difference barely varies: the statistic may be
        # infinite, which metrics.json (strict JSON) stores as null
        assert expected["statistic"] > 0
        assert dm["statistic"] == (pytest.approx(expected["statistic"]) if np.isfinite(expected["statistic"]) else None)
    assert "dm" not in ev.metrics["baselines"][best] and "dm" in ev.metrics["baselines"]["persistence"]
    import json

    json.dumps(ev.metrics, allow_nan=False)  # strict JSON: no NaN or infinity anywhere


def test_comparison_table_and_text(compared):
    ev, _ = compared
    table = comparison_table(ev.metrics)
    assert list(table.index) == ["a", "b", "c", "ensemble", "persistence", "seasonal_naive", "linear", "nlinear", "autoreg"]
    assert list(table["kind"].unique()) == ["model", "ensemble", "baseline"]
    assert table.loc["a", "mae scaled"] == pytest.approx(5 / 6) and table.loc["a", "seeds"] == 2
    assert table.loc["a", "mae scaled sd"] == pytest.approx(np.std([1, 2 / 3], ddof=1))
    best = ev.metrics["meta"]["best_baseline"]
    assert np.isnan(table.loc[best, "dm statistic"]) and np.isnan(table.loc["c", "mse scaled sd"])
    shown = comparison_display(table, "kW")
    assert shown.loc["a", "test MAE (scaled)"] == f"{5 / 6:.4g} ± {np.std([1, 2 / 3], ddof=1):.2g}"
    assert shown.loc["c", "test MAE (kW)"] == f"{table.loc['c', 'mae original']:.4g}"  # one seed: no ±
    assert shown.loc[best, "DM stat"] == "–" and shown.loc["persistence", "training s"] == "<0.01"
    text = comparison_summary(ev.metrics)
    assert "selected model** is **a** (seed 7)" in text and f"best baseline, {best}" in text
    lines = {line.split("**")[1]: line for line in text.splitlines() if line.startswith("- **")}
    assert "beats seasonal_naive; not persistence" in lines["c"]  # c is persistence: a tie is not a win
    assert lines["a"].startswith("- **a** (selected): beats persistence, seasonal_naive")
    assert f"against {best}: DM statistic" in lines["a"]
    assert metrics_table(ev.metrics, "scaled").index[0] == "a"


def test_old_metrics_documents_still_make_tables():
    """A metrics.json of a run from before the comparison (no `models`) still gives a table and a headline."""
    old = {"meta": {"windows": 10}, "model": {"original": {m: 1.0 for m in METRICS}, "scaled": {m: 1.0 for m in METRICS}},
           "baselines": {"persistence": {"original": {m: 2.0 for m in METRICS}, "scaled": {m: 2.0 for m in METRICS}}}}
    assert list(metrics_table(old, "original").index) == ["model", "persistence"]
    assert "RMSE of the model is **1 kW**" in headline(old, "kW")
