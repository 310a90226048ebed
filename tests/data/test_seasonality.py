"""Frequency-aware defaults: time step -> seasonal periods, `auto` settings, the data chapter's spans, check_inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.config import AUTO, ConfigError, from_dict
from lstmkit.data.seasonality import (
    DECOMPOSE_MAX_ROWS,
    MAX_AUTO_LOOKBACK,
    auto_lookback,
    correlation_lags,
    decompose_span,
    resolve_config,
    seasonality,
    series_seasonality,
    zoom_steps,
)
from lstmkit.data.splits import split_bounds
from lstmkit.report.data import period_sentence


@pytest.mark.parametrize("freq, periods, cycles", [
    ("15min", (96, 672), ("day", "week")),
    ("h", (24, 168), ("day", "week")),
    ("D", (7, 365), ("week", "year")),
    ("W", (52,), ("year",)),
    ("MS", (12,), ("year",)),
    ("QS", (4,), ("year",)),
    ("YS", (), ()),
])
def test_the_periods_of_each_time_step(freq, periods, cycles):
    s = seasonality(freq)
    assert s.periods == periods and s.cycles == cycles
    assert s.main == (periods[0] if periods else 1)


def test_series_seasonality_infers_the_step_or_takes_the_configured_one():
    index = pd.date_range("2024-01-01", periods=50, freq="15min")
    assert series_seasonality(index).periods == (96, 672)
    assert series_seasonality(index, "h").periods == (24, 168)   # data.frequency wins
    irregular = pd.DatetimeIndex(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-23", "2024-01-29"])
    assert series_seasonality(irregular).periods == (52,)        # the most common difference: a week


def _cfg(**overrides):
    return from_dict({}, {"data.source": "csv", "data.path": "x.csv", **overrides})


@pytest.mark.parametrize("freq, rows, period", [("h", 1000, 24), ("D", 1000, 7), ("W", 400, 52), ("MS", 200, 12),
                                                ("YS", 100, 1)])
def test_resolve_config_turns_auto_into_the_main_period(freq, rows, period):
    cfg, notes = resolve_config(_cfg(), pd.date_range("2000-01-01", periods=rows, freq=freq))
    assert cfg.evaluation.seasonal_period == period
    assert len(notes) == 1 and notes[0].startswith("Seasonal period")


def test_an_explicit_period_wins_over_auto():
    cfg, notes = resolve_config(_cfg(**{"evaluation.seasonal_period": 12}), pd.date_range("2000", periods=500, freq="h"))
    assert cfg.evaluation.seasonal_period == 12 and notes == []


@pytest.mark.parametrize("freq, season", [("W", 52), ("15min", 96)])
def test_auto_period_falls_back_to_one_when_the_training_split_holds_no_season(freq, season):
    index = pd.date_range("2000-01-01", periods=60, freq=freq)   # 42 training rows: no season plus one step
    cfg, notes = resolve_config(_cfg(), index)
    assert cfg.evaluation.seasonal_period == 1
    assert f"season would be {season} steps" in notes[0] and "42 rows" in notes[0]
    train = split_bounds(60, 0.7, 0.15, 0.15).train
    assert "needs a training split of more than" in period_sentence(1, seasonality(freq), train[1] - train[0])


def test_auto_lookback_is_bounded_by_the_training_rows():
    for freq in ("15min", "h", "D", "W", "YS"):
        assert 1 <= auto_lookback(seasonality(freq), horizon=6) <= MAX_AUTO_LOOKBACK
    cfg, notes = resolve_config(_cfg(**{"window.lookback": AUTO, "window.horizon": 6}),
                                pd.date_range("2000", periods=100, freq="15min"))
    train = split_bounds(100, 0.7, 0.15, 0.15).train
    assert cfg.window.lookback <= (train[1] - train[0] - 6) // 2      # 192 would leave no training window
    assert any(n.startswith("Look-back") and "shortened" in n for n in notes)


@pytest.mark.parametrize("freq, rows, steps, words", [
    ("h", 10_000, 336, "2 weeks"), ("15min", 10_000, 1344, "2 weeks"), ("D", 5_000, 730, "2 years"),
    ("W", 500, 104, "2 years"), ("MS", 100, 24, "2 years"), ("h", 100, 48, "2 days"), ("h", 40, 40, "whole series"),
    ("YS", 500, 100, "100 steps"), ("YS", 30, 30, "whole series"),
])
def test_zoom_shows_two_of_the_longest_cycle_that_fits(freq, rows, steps, words):
    assert zoom_steps(seasonality(freq), rows) == (steps, words)


def test_decompose_span_holds_four_of_the_longest_cycle_and_is_capped():
    assert decompose_span(seasonality("h"), 5000) == 5000
    assert decompose_span(seasonality("h"), 100) == 4 * 168
    assert decompose_span(seasonality("15min"), 2000) == 4 * 672
    assert decompose_span(seasonality("h"), 10**7) == DECOMPOSE_MAX_ROWS


def test_correlation_lags_follow_the_lookback_and_the_rows():
    assert correlation_lags(seasonality("h"), 336, 10_000) == 48
    assert correlation_lags(seasonality("15min"), 192, 10_000) == 96
    assert correlation_lags(seasonality("h"), 24, 10_000) == 24
    assert correlation_lags(seasonality("h"), 24, 40) == 10
    assert correlation_lags(seasonality("h"), 24, 3) == 0


# ---------------------------------------------------------------- the up-front check


def _write(tmp_path, rows: int, freq: str = "h"):
    index = pd.date_range("2024-01-01", periods=rows, freq=freq)
    y = np.sin(np.arange(rows) / 3) + np.arange(rows) * 0.01
    path = tmp_path / "s.csv"
    pd.DataFrame({"when": index.strftime("%Y-%m-%d %H:%M:%S"), "y": y}).to_csv(path, index=False)
    return path


def _quick(path, **overrides):
    from lstmkit.config import load_config
    from lstmkit.runs.notebooks import project_root

    return load_config(str(project_root() / "configs" / "quick.yaml"),
                       {"data.source": "csv", "data.path": str(path), "data.target": "y", "data.features": [],
                        "data.date_column": "when", **overrides})


def test_check_inputs_refuses_tuning_folds_that_hold_no_window(tmp_path):
    from lstmkit.stages.checks import check_inputs

    path = _write(tmp_path, 45)   # 45 rows: every split holds a window, the first of two folds does not
    check_inputs(_quick(path, **{"tuning.strategy": "none"}))
    with pytest.raises(ConfigError, match=r"tuning.cv_folds: 2 walk-forward folds .* use at most 1 fold"):
        check_inputs(_quick(path))
    check_inputs(_quick(_write(tmp_path, 60)))


def test_check_inputs_refuses_an_explicit_period_longer_than_the_training_split(tmp_path):
    from lstmkit.stages.checks import check_inputs

    path = _write(tmp_path, 40, "W")
    check_inputs(_quick(path, **{"tuning.strategy": "none"}))   # auto: period 1, with a note
    with pytest.raises(ConfigError, match=r"evaluation.seasonal_period: 52 needs a training split of more than 52 rows"):
        check_inputs(_quick(path, **{"tuning.strategy": "none", "evaluation.seasonal_period": 52}))


# ---------------------------------------------------------------- short series in evaluation, long ones in figures


def test_seasonal_naive_reaches_before_the_window_into_the_series():
    from lstmkit.data.windows import prepare
    from lstmkit.models.baselines.seasonal_naive import SeasonalNaive
    from lstmkit.models.metrics import mase_scale

    rows = 200
    index = pd.date_range("2024-01-01", periods=rows, freq="h")
    frame = pd.DataFrame({"y": np.sin(2 * np.pi * np.arange(rows) / 24) + np.arange(rows) * 0.01}, index=index)
    cfg = _cfg(**{"data.target": "y", "data.features": [], "window.lookback": 4, "window.horizon": 3})
    prepared = prepare(frame, cfg)
    forecast = SeasonalNaive(24).fit(prepared).predict_split(prepared, "test")
    y = prepared.scaled[:, 0]
    origins = prepared.origins("test")
    np.testing.assert_allclose(forecast[:, 0], y[origins + 1 - 24], rtol=1e-6)  # 24 rows back: far before the window
    assert np.isfinite(mase_scale(y[:141].astype(float), 24))


def test_an_auto_period_longer_than_the_training_split_scores_finite_mase():
    from lstmkit.models.metrics import mase_scale

    index = pd.date_range("2000-01-02", periods=40, freq="W")
    cfg, _ = resolve_config(_cfg(), index)
    train = split_bounds(40, 0.7, 0.15, 0.15).train
    y = np.sin(np.arange(40) / 5.0)[slice(*train)]
    assert cfg.evaluation.seasonal_period == 1
    assert np.isfinite(mase_scale(y, cfg.evaluation.seasonal_period))
    with pytest.raises(ValueError, match="shorter than the seasonal period"):
        mase_scale(y, 52)  # what the up-front check keeps from happening


def test_long_series_figures_draw_a_bounded_envelope():
    import matplotlib

    matplotlib.use("Agg")
    from lstmkit.report import plots

    rows = 200_000
    index = pd.date_range("2020-01-01", periods=rows, freq="min")
    y = np.sin(np.arange(rows) / 500.0)
    y[123_457] = 9.0  # one spike: the envelope keeps it
    fig = plots.series(pd.DataFrame({"y": y}, index=index), "y", "a.u.")
    line = fig.axes[0].lines[0]
    assert len(line.get_xdata()) <= plots.MAX_POINTS
    assert line.get_ydata().max() == 9.0
    assert "min and max of every 100 steps" in fig._suptitle.get_text() and "all 200,000 steps" in fig._suptitle.get_text()
    recent = plots.series(pd.DataFrame({"y": y}, index=index), "y", "a.u.", last=336, span="2 weeks")
    assert "last 336 steps: 2 weeks" in recent._suptitle.get_text() and len(recent.axes[0].lines[0].get_xdata()) == 336


def test_periods_too_long_for_mstl_are_left_out_with_the_reason():
    from lstmkit.data.seasonality import DECOMPOSE_MAX_PERIOD, decompose

    s = seasonality("min")                       # a day (1440) and a week (10080) of minutes
    assert decompose_span(s, 5000) == 5000       # no period short enough: the span stays at data.decompose_rows
    index = pd.date_range("2024-01-01", periods=5000, freq="min")
    result, text = decompose(pd.Series(np.sin(np.arange(5000) / 50), index=index), s.periods, max_rows=5000,
                             max_period=DECOMPOSE_MAX_PERIOD)
    assert result is None and "exceed 1008 steps" in text


@pytest.mark.parametrize("freq, lookback", [("15min", 192), ("h", 48), ("D", 48), ("W-SAT", 104), ("MS", 48), ("YS", 16)])
def test_auto_lookback_is_two_seasons_but_at_least_48_steps_of_a_seasonal_series(freq, lookback):
    assert auto_lookback(seasonality(freq), horizon=6) == lookback  # the rule chosen in README, Defaults and why
