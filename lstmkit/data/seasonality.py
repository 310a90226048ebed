"""The series' time step and the seasonal periods it implies (day, week and year cycles counted in steps), the
`auto` settings they decide (seasonal period, look-back), and the seasonal decomposition of the data chapter."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd

from lstmkit.config import AUTO, Config, from_dict
from lstmkit.core.errors import ConfigError
from lstmkit.core.timeindex import infer_freq, step_words
from lstmkit.data.splits import split_bounds

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
YEAR = pd.Timedelta(days=365.25)
# Calendar steps have no fixed length: their nominal one (in days) decides which cycles they can hold.
_CALENDAR_DAYS = {"Y": 365.25, "A": 365.25, "Q": 91.3125, "M": 30.4375, "W": 7.0, "B": 7 / 5, "D": 1.0}
_CYCLES = (("day", DAY), ("week", WEEK), ("year", YEAR))
MAX_PERIODS = 2  # the two shortest cycles that fit: hourly -> day and week, daily -> week and year
ROUNDING = 0.02  # a cycle of 52.18 weeks or 365.25 days counts as 52 or 365 steps (a calendar year is not whole)


@dataclass(frozen=True)
class Seasonality:
    """The seasonal periods (in steps) of a time step, with the cycles they come from."""

    step: str                   # the time step as a pandas offset alias, e.g. `h`, `15min`, `W-SUN`, `MS`
    periods: tuple[int, ...]    # e.g. (24, 168) for hourly data; () when no cycle fits (yearly data)
    cycles: tuple[str, ...]     # e.g. ("day", "week")

    @property
    def main(self) -> int:
        """The shortest period, or 1 (no season: seasonal naive becomes persistence) when there is none."""
        return self.periods[0] if self.periods else 1

    def describe(self) -> str:
        """The periods in words, e.g. `24 steps (a day) and 168 steps (a week) of the 1-hour step`."""
        if not self.periods:
            return f"no seasonal period: a {self.step} step holds no day, week or year cycle"
        parts = [f"{p} steps (a {c})" for p, c in zip(self.periods, self.cycles)]
        return " and ".join(parts) + f", from the series' time step `{self.step}`"


def nominal_step(freq: str | pd.DateOffset | pd.Timedelta) -> pd.Timedelta:
    """Length of one step: exact for fixed steps (`15min`, `h`), nominal for calendar ones (`MS` = 30.44 days)."""
    if isinstance(freq, pd.Timedelta):
        return freq
    offset = pd.tseries.frequencies.to_offset(freq)
    try:
        return pd.Timedelta(offset)
    except ValueError:  # calendar offsets (month, quarter, year) have no fixed length
        code = offset.name.split("-")[0].lstrip("0123456789")
        days = next((d for prefix, d in _CALENDAR_DAYS.items() if code.startswith(prefix)), None)
        if days is None:
            raise ValueError(f"time step {offset.freqstr!r} has no known length") from None
        return pd.Timedelta(days=days * offset.n)


def seasonality(freq: str | pd.DateOffset | pd.Timedelta) -> Seasonality:
    """Seasonal periods of a time step: day and week cycles below a day, week and year for daily data, year above.

    15-minute: (96, 672); hourly: (24, 168); daily: (7, 365); weekly: (52,); monthly: (12,); quarterly: (4,);
    yearly: () -- at most MAX_PERIODS, each a whole number of steps and at least 2.
    """
    step = nominal_step(freq)
    name = pd.tseries.frequencies.to_offset(freq).freqstr
    periods: list[int] = []
    cycles: list[str] = []
    for cycle_name, cycle in _CYCLES:
        ratio = cycle / step
        whole = round(ratio)
        if whole < 2 or abs(ratio - whole) > ROUNDING * ratio:
            continue
        if cycle_name == "year" and step < DAY:  # a yearly cycle of hourly data (8766 steps) only serves long plots
            continue
        periods.append(int(whole))
        cycles.append(cycle_name)
        if len(periods) == MAX_PERIODS:
            break
    return Seasonality(step=name, periods=tuple(periods), cycles=tuple(cycles))


def series_seasonality(index: pd.DatetimeIndex, frequency: str | None = None) -> Seasonality:
    """Seasonality of a series: from `frequency` (the configured `data.frequency`) when given, else inferred."""
    freq = frequency or infer_freq(index)
    if freq is None:
        return Seasonality(step="unknown", periods=(), cycles=())
    return seasonality(freq)


def resolve_period(setting: int | str, index: pd.DatetimeIndex, frequency: str | None = None) -> tuple[int, str]:
    """The seasonal period used by seasonal naive and MASE, with the reason: an explicit integer wins over `auto`."""
    if setting != "auto":
        return int(setting), f"{int(setting)} steps, set by evaluation.seasonal_period"
    s = series_seasonality(index, frequency)
    if not s.periods:
        return 1, f"1 step (no season: {s.describe()}; seasonal naive repeats the last value)"
    return s.main, f"{s.main} steps (a {s.cycles[0]}), derived from the series' time step `{s.step}`"


MIN_LOOKBACK = 16      # steps: enough for the short-term dynamics when a series has no season
MIN_SEASONAL_LOOKBACK = 48  # steps: monthly El Nino validated 0.22 at 48 against 0.29 at 24 (README, Defaults and why)
MAX_AUTO_LOOKBACK = 336  # steps: beyond this an LSTM's sequential steps cost more than the season adds


def auto_lookback(s: Seasonality, horizon: int) -> int:
    """Look-back chosen by `window.lookback: auto`: two main seasons (the season and the one before it to compare),
    at least MIN_SEASONAL_LOOKBACK steps for a seasonal series (monthly: 4 years, daily: 7 weeks; slower cycles
    than the season matter on short series), MIN_LOOKBACK without a season, twice the horizon, and at most
    MAX_AUTO_LOOKBACK steps. Hourly 48, daily 48, weekly 104, monthly 48, 15-minute 192."""
    seasons = max(2 * s.main, MIN_SEASONAL_LOOKBACK) if s.periods else MIN_LOOKBACK
    return int(min(max(seasons, MIN_LOOKBACK, 2 * horizon), MAX_AUTO_LOOKBACK))


def resolve_config(cfg: Config, index: pd.DatetimeIndex) -> tuple[Config, list[str]]:
    """A copy of cfg with every `auto` setting replaced by the number derived from the series, and why.

    Resolved: `evaluation.seasonal_period` (the main seasonal period) and `window.lookback` (`auto_lookback`);
    a number already set is kept. The copy is what the run records in its config.yaml.
    """
    s = series_seasonality(index, cfg.data.frequency)
    overrides: dict[str, int] = {}
    notes: list[str] = []
    if cfg.evaluation.seasonal_period == AUTO:
        period, why = resolve_period(AUTO, index, cfg.data.frequency)
        period, why = _period_that_fits(period, why, s, cfg, len(index))
        overrides["evaluation.seasonal_period"] = period
        notes.append(f"Seasonal period of the seasonal-naive baseline and MASE: {why}.")
    if cfg.window.lookback == AUTO:
        lookback = auto_lookback(s, cfg.window.horizon)
        why = (f"two main seasons of {s.main} steps, at least {MIN_SEASONAL_LOOKBACK}" if s.periods else "no season") + \
            f", kept between {max(MIN_LOOKBACK, 2 * cfg.window.horizon)} and {MAX_AUTO_LOOKBACK}"
        a, b = split_bounds(len(index), cfg.split.train, cfg.split.val, cfg.split.test).train
        fits = (b - a - cfg.window.horizon) // 2  # half the training rows still start a window
        if lookback > fits >= 1:
            lookback, why = fits, f"{why}, shortened so that half of the {b - a} training rows start a window"
        overrides["window.lookback"] = lookback
        notes.append(f"Look-back: {lookback} steps (`window.lookback: auto`: {why}).")
    if not overrides:
        return cfg, notes
    return from_dict(cfg.to_dict(), overrides), notes


NO_SEASON_ZOOM = 100  # steps shown by the zoomed view of a series without a season (yearly data)


def zoom_steps(s: Seasonality, n_rows: int) -> tuple[int, str]:
    """Rows of the data chapter's zoomed view (the most recent ones) and their span in words.

    Two of the longest cycle that fits twice in the series (hourly: 336 steps, `2 weeks`; 15-minute: 1,344 steps,
    `2 weeks`; daily and weekly: `2 years`; monthly: 24 steps, `2 years`); the whole series when no cycle fits twice;
    NO_SEASON_ZOOM steps when the time step holds no cycle.
    """
    for period, cycle in sorted(zip(s.periods, s.cycles), reverse=True):
        if 2 * period <= n_rows:
            return 2 * period, f"2 {cycle}s"
    if s.periods or n_rows <= NO_SEASON_ZOOM:
        return n_rows, "whole series"
    return NO_SEASON_ZOOM, f"{NO_SEASON_ZOOM} steps"


DECOMPOSE_SEASONS = 4         # the decomposed span holds at least this many of the longest period
DECOMPOSE_MAX_ROWS = 50_000   # MSTL takes about 0.2 ms a row: beyond this the data chapter would take minutes
DECOMPOSE_MAX_PERIOD = 1008   # MSTL's smoothing windows grow with the period: a day of minutes (1440) takes minutes


def decompose_span(s: Seasonality, rows: int) -> int:
    """Most recent rows the data chapter decomposes: `data.decompose_rows`, raised to DECOMPOSE_SEASONS of the
    longest period up to DECOMPOSE_MAX_PERIOD, at most DECOMPOSE_MAX_ROWS (periods that do not fit are left out)."""
    longest = max([p for p in s.periods if p <= DECOMPOSE_MAX_PERIOD], default=1)
    return int(min(max(rows, DECOMPOSE_SEASONS * longest), DECOMPOSE_MAX_ROWS))


MAX_CORRELATION_LAG = 48      # lags of the lagged-correlation figure when the season is short
CORRELATION_ROWS = 100_000    # most recent rows the lagged correlations are computed on


def correlation_lags(s: Seasonality, lookback: int, n_rows: int) -> int:
    """Largest lag of the lagged-correlation figure: the look-back (the model sees no further), at most
    max(MAX_CORRELATION_LAG, a main season) and a quarter of the rows (0: too few rows for the figure)."""
    return int(max(0, min(lookback, max(MAX_CORRELATION_LAG, s.main), n_rows // 4)))


def _period_that_fits(period: int, why: str, s: Seasonality, cfg: Config, n_rows: int) -> tuple[int, str]:
    """The `auto` seasonal period, or 1 (persistence) when the training split holds no season plus one step: the
    MASE scale compares each training row with the one a season earlier, so it needs more than `period` rows."""
    if period <= 1:
        return period, why
    try:
        a, b = split_bounds(n_rows, cfg.split.train, cfg.split.val, cfg.split.test).train
    except ConfigError:  # the split itself does not fit: check_splits says so
        return period, why
    if b - a > period:
        return period, why
    return 1, (f"1 step: the series' season would be {period} steps (a {s.cycles[0]}), but the training split holds only "
               f"{b - a} rows, too few for a seasonal MASE scale (more than {period} rows); seasonal naive repeats "
               f"the last value and MASE uses the one-step naive scale")


def decompose(series: pd.Series, periods: tuple[int, ...], max_rows: int | None = None, max_period: int | None = None):
    """MSTL decomposition of the most recent `max_rows` rows (all when None), with a sentence saying what was done.

    Returns (result, sentence): result is statsmodels' DecomposeResult (trend, one seasonal component per period that
    fits more than twice into the span and is at most `max_period` steps, remainder) or None when no period fits (or
    there is none); the sentence names the span and periods decomposed, or why nothing was, for the data chapter.
    """
    from statsmodels.tsa.seasonal import MSTL  # statsmodels loads in about a second: only for the data chapter

    n = len(series)
    part = series if max_rows is None or n <= max_rows else series.iloc[-max_rows:]
    unit = step_words(series.index) if isinstance(series.index, pd.DatetimeIndex) else "steps"
    span = (f"all {n:,} rows" if len(part) == n else
            f"the most recent {len(part):,} of {n:,} rows ({part.index[0]} to {part.index[-1]})")
    if not periods:
        return None, ("No seasonal decomposition: the series' time step holds no seasonal period, so there is no "
                      "cycle to separate from the trend.")
    too_long = [p for p in periods if max_period is not None and p > max_period]
    if too_long and len(too_long) == len(periods):
        return None, ("No seasonal decomposition: the seasonal period(s) of " + " and ".join(f"{p} {unit}" for p in too_long)
                      + f" exceed {max_period} steps, and MSTL's smoothing windows grow with the period (a day of "
                      f"1-minute steps takes minutes).")
    periods = tuple(p for p in periods if p not in too_long)
    usable = tuple(p for p in periods if len(part) > 2 * p)  # MSTL drops periods of half the span or more
    left_out = [p for p in periods if p not in usable]
    if not usable:
        return None, (f"No seasonal decomposition: {span} hold {len(part) / min(periods):.3g} cycles of the shortest "
                      f"seasonal period ({min(periods)} {unit}), and MSTL needs more than two to tell a seasonal "
                      f"component from the trend.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about short spans that the sentence already explains
        result = MSTL(part, periods=usable).fit()
    text = f"MSTL decomposed {span} with seasonal period(s) of " + " and ".join(f"{p} {unit}" for p in usable)
    if left_out:
        text += ("; left out: " + ", ".join(f"{p} {unit}" for p in left_out)
                 + " (not more than two full cycles in the span)")
    if too_long:
        text += "; left out: " + ", ".join(f"{p} {unit}" for p in too_long) + f" (longer than {max_period} steps)"
    return result, text + "."
