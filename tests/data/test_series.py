"""Data stage: the synthetic generator and its declared ground truth, and CSV loading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import from_dict
from lstmkit.core.errors import DataError
from lstmkit.core.timeindex import step_words
from lstmkit.data.loading import load_csv
from lstmkit.data.seasonality import decompose
from lstmkit.data.series import load_series, read_series, save_series
from lstmkit.data.synthetic import LAG_X1, LAG_X2, GroundTruth, make_synthetic

LENGTH, NOISE = 2000, 0.3
TERMS = ["const", "trend", "daily", "daily*weekly", "sin weekly", "cos weekly", "x1", "tanh x2", "x1*x2"]


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(LENGTH, NOISE, seed=3)


def fit_declared_terms(frame: pd.DataFrame, lag1: int, lag2: int, extra: list[np.ndarray] = ()):
    """Least squares of the target on the generator's declared terms built from the frame's own columns.

    Rows before the largest lag are skipped, so only genuinely lagged values are used.
    Returns (coefficients by term name, residual standard deviation).
    """
    start = max(lag1, lag2, 12)
    rows = np.arange(start, len(frame))
    t = rows.astype(float)
    a = frame["x1"].to_numpy()[rows - lag1]
    b = frame["x2"].to_numpy()[rows - lag2]
    daily, weekly = 2 * np.pi * t / 24, 2 * np.pi * t / 168
    columns = [np.ones_like(t), t, np.sin(daily), np.sin(weekly) * np.sin(daily), np.sin(weekly), np.cos(weekly),
               a, np.tanh(1.5 * b), a * b, *[e[rows] for e in extra]]
    X = np.column_stack(columns)
    y = frame["target"].to_numpy()[rows]
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    names = TERMS + [f"extra{i}" for i in range(len(extra))]
    return dict(zip(names, coef)), float(np.std(y - X @ coef))


# ------------------------------------------------------------------ determinism and shape


def test_same_seed_gives_identical_series():
    a, truth_a = make_synthetic(500, NOISE, seed=7)
    b, truth_b = make_synthetic(500, NOISE, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert truth_a == truth_b


def test_different_seed_gives_a_different_series():
    a, _ = make_synthetic(500, NOISE, seed=7)
    b, _ = make_synthetic(500, NOISE, seed=8)
    for col in ["x1", "x2", "x3", "target"]:
        assert not np.allclose(a[col], b[col]), col


def test_series_shape_columns_and_hourly_index(synthetic):
    frame, _ = synthetic
    assert list(frame.columns) == ["x1", "x2", "x3", "target"]
    assert len(frame) == LENGTH
    assert frame.index[0] == pd.Timestamp("2023-01-02")
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(hours=1)).all()
    assert np.isfinite(frame.to_numpy()).all()


def test_too_short_synthetic_series_is_rejected():
    with pytest.raises(DataError, match="at least 200 rows"):
        make_synthetic(199)


def test_ground_truth_declares_the_driving_lags(synthetic):
    _, truth = synthetic
    assert truth.driving_pairs() == [("x1", LAG_X1), ("x2", LAG_X2)] == [("x1", 6), ("x2", 12)]
    assert [(d.feature, d.lag, d.coef) for d in truth.drivers] == [("x1", 6, 1.2), ("x2", 12, 1.0), ("x1", 6, 0.8)]
    assert truth.noise_std == NOISE and truth.distractors == ["x3"]


def test_ground_truth_dict_round_trip(synthetic):
    _, truth = synthetic
    assert GroundTruth.from_dict(truth.to_dict()) == truth


# ------------------------------------------------------------------ the data agree with the declared truth


def test_regression_on_declared_terms_leaves_only_the_noise(synthetic):
    frame, _ = synthetic
    _, resid = fit_declared_terms(frame, LAG_X1, LAG_X2)
    assert resid == pytest.approx(NOISE, rel=0.1)


def test_regression_recovers_declared_driver_coefficients(synthetic):
    frame, truth = synthetic
    coef, _ = fit_declared_terms(frame, LAG_X1, LAG_X2)
    declared = {"x1": truth.drivers[0].coef, "tanh x2": truth.drivers[1].coef, "x1*x2": truth.drivers[2].coef}
    for term, value in declared.items():
        assert coef[term] == pytest.approx(value, abs=0.06), term


def test_regression_recovers_seasonal_level_and_trend_terms(synthetic):
    frame, _ = synthetic
    coef, _ = fit_declared_terms(frame, LAG_X1, LAG_X2)
    # 50 + 0.0003 t + (1.5 + 0.5 sin w) sin d + 0.8 sin(w + 0.5), the last expanded into sin w and cos w
    expected = {"const": 50.0, "daily": 1.5, "daily*weekly": 0.5,
                "sin weekly": 0.8 * np.cos(0.5), "cos weekly": 0.8 * np.sin(0.5)}
    for term, value in expected.items():
        assert coef[term] == pytest.approx(value, abs=0.08), term
    assert coef["trend"] == pytest.approx(0.0003, abs=1e-4)


def test_noise_std_sets_the_residual_floor():
    frame, _ = make_synthetic(LENGTH, 0.6, seed=3)
    _, resid = fit_declared_terms(frame, LAG_X1, LAG_X2)
    assert resid == pytest.approx(0.6, rel=0.1)


@pytest.mark.parametrize("lag1,lag2", [(LAG_X1 - 1, LAG_X2), (LAG_X1, LAG_X2 - 1), (LAG_X1 + 1, LAG_X2 + 1)])
def test_wrong_lags_fit_clearly_worse(synthetic, lag1, lag2):
    frame, _ = synthetic
    _, right = fit_declared_terms(frame, LAG_X1, LAG_X2)
    _, wrong = fit_declared_terms(frame, lag1, lag2)
    assert wrong > 1.5 * right


def test_distractor_has_no_effect(synthetic):
    frame, _ = synthetic
    x3 = frame["x3"].to_numpy()
    lagged = [np.concatenate([np.zeros(k), x3[:-k]]) for k in (LAG_X1, LAG_X2)]
    coef, _ = fit_declared_terms(frame, LAG_X1, LAG_X2, extra=[x3, *lagged])
    for i in range(3):
        assert abs(coef[f"extra{i}"]) < 0.05


# ------------------------------------------------------------------ load_series / input_columns


def test_load_series_selects_configured_columns():
    cfg = from_dict({"seed": 4, "data": {"features": ["x2"], "length": 300}})
    series = load_series(cfg)
    frame, truth = series.frame, series.truth
    assert list(frame.columns) == ["x2", "target"]
    pd.testing.assert_frame_equal(frame, make_synthetic(300, 0.3, seed=4)[0][["x2", "target"]])
    assert truth is not None


def test_load_series_unknown_synthetic_column():
    cfg = from_dict({"data": {"features": ["x9"], "length": 300}})
    with pytest.raises(DataError, match="no column 'x9'"):
        load_series(cfg)


def test_data_columns_put_target_last_once():
    cfg = from_dict({"data": {"features": ["target", "x2", "x1"]}})
    assert cfg.data.columns() == ["x2", "x1", "target"]


# ------------------------------------------------------------------ CSV


def csv_config(path, features=("a",)):
    return from_dict({"data": {"source": "csv", "path": str(path), "features": list(features), "target": "y"}}).data


def test_load_csv_reads_numeric_columns_with_timestamp_index(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,a,y,unused\n2024-01-01 00:00,1,2.5,x\n2024-01-01 01:00,3,4.5,y\n")
    frame, notes = load_csv(csv_config(path))
    assert notes == ["timestamp column 'date' detected"]  # data.date_column left empty
    assert list(frame.columns) == ["a", "y"]
    assert frame["a"].dtype == np.float32 and frame["y"].tolist() == [2.5, 4.5]
    assert frame.index[1] == pd.Timestamp("2024-01-01 01:00")


def test_save_and_read_series_round_trip(tmp_path):
    frame, _ = make_synthetic(240, seed=1)
    frame = frame[["x3", "target", "x1"]]  # an order that is not alphabetical
    path = tmp_path / "data" / "series.parquet"
    save_series(frame, path)
    back = read_series(path)
    assert list(back.columns) == ["x3", "target", "x1"] and (back.dtypes == np.float32).all()
    np.testing.assert_array_equal(back.to_numpy(), frame.to_numpy(dtype=np.float32))  # float32 values kept exactly
    pd.testing.assert_index_equal(back.index, frame.index)
    assert back.index.name == "date" and back.index.freqstr == "h"
    assert [p.name for p in path.parent.iterdir()] == ["series.parquet"]  # no temporary file left behind


@pytest.mark.parametrize("freq", ["15min", "D", "W-SUN", "MS"])
def test_read_series_restores_the_frequency(tmp_path, freq):
    index = pd.date_range("2021-01-01", periods=40, freq=freq, name="when")
    save_series(pd.DataFrame({"y": np.arange(40.0)}, index=index), tmp_path / "s.parquet")
    back = read_series(tmp_path / "s.parquet")
    assert back.index.freqstr == index.freqstr and back.index.name == "when"
    index.freq = None  # a frame without a recorded frequency: inferred on reading
    save_series(pd.DataFrame({"y": np.arange(40.0)}, index=index), tmp_path / "s.parquet")
    assert read_series(tmp_path / "s.parquet").index.freqstr == pd.date_range("2021", periods=3, freq=freq).freqstr


def test_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    frame, _ = make_synthetic(240, seed=1)
    with pytest.raises(OSError, match="disk full"):
        save_series(frame, tmp_path / "series.parquet")
    assert list(tmp_path.iterdir()) == []


def test_read_series_names_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "series.parquet"
    path.write_text("date,y\n2020-01-01,1\n")
    with pytest.raises(DataError, match="series.parquet: cannot be read"):
        read_series(path)


# ------------------------------------------------------------------ seasonal decomposition


def test_decompose_uses_only_periods_that_fit_more_than_twice():
    frame, _ = make_synthetic(400, seed=1)
    short, text = decompose(frame["target"].iloc[:200], periods=(24, 168))   # 168 does not fit twice in 200 rows
    assert isinstance(short.seasonal, pd.Series)
    assert "24 hours" in text and "left out: 168 hours" in text
    full, text = decompose(frame["target"], periods=(24, 168))
    assert list(full.seasonal.columns) == ["seasonal_24", "seasonal_168"]
    assert "all 400 rows" in text and "left out" not in text


def test_decompose_components_add_up_to_the_series():
    frame, _ = make_synthetic(400, seed=1)
    result, _ = decompose(frame["target"], periods=(24, 168))
    total = result.trend + result.seasonal.sum(axis=1) + result.resid
    np.testing.assert_allclose(total, frame["target"], atol=1e-9)


@pytest.mark.parametrize("rows", [40, 48])  # 48: exactly two days, still not more than two cycles
def test_decompose_of_a_too_short_series_is_none_with_the_reason(rows):
    series = pd.Series(np.sin(np.arange(rows)), index=pd.date_range("2024-01-01", periods=rows, freq="h"))
    result, text = decompose(series, periods=(24, 168))
    assert result is None
    assert text.startswith("No seasonal decomposition") and f"all {rows} rows" in text and "24 hours" in text


def test_decompose_without_a_period_is_none_with_the_reason():
    series = pd.Series(np.arange(60.0), index=pd.date_range("1900-01-01", periods=60, freq="YS"))
    result, text = decompose(series, periods=())
    assert result is None and "no seasonal period" in text


def test_decompose_takes_only_the_most_recent_rows():
    frame, _ = make_synthetic(3000, seed=1)
    result, text = decompose(frame["target"], periods=(24, 168), max_rows=1000)
    assert len(result.observed) == 1000
    assert result.observed.index[0] == frame.index[-1000] and result.observed.index[-1] == frame.index[-1]
    assert "the most recent 1,000 of 3,000 rows" in text


@pytest.mark.parametrize("freq, words", [("h", "hours"), ("15min", "15-minute steps"), ("D", "days"), ("2h", "2-hour steps"),
                                         ("min", "minutes"), ("30s", "30-second steps")])
def test_step_words_name_the_time_step_for_lag_axes(freq, words):
    assert step_words(pd.date_range("2024-01-01", periods=10, freq=freq)) == words


def test_step_words_follow_the_usual_step_of_an_irregular_index():
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:15", "2024-01-01 00:30", "2024-01-01 02:00"])
    assert step_words(index) == "15-minute steps"
    assert step_words(index[:1]) == "steps"
