"""Time-step helpers shared by the data, bundle and service layers: offsets, steps in words, the inferred step."""

from __future__ import annotations

import pandas as pd
from pandas.tseries.frequencies import to_offset


def offset(freq: str) -> pd.DateOffset:
    """The pandas offset of an alias such as `h`, `15min` or `MS` (pandas' ValueError when it is not one)."""
    return to_offset(freq)


def step_text(step: pd.Timedelta) -> str:
    """A time step in words, e.g. `1-hour` or `15-minute`."""
    seconds = int(step.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-second"


def step_words(index: pd.DatetimeIndex) -> str:
    """The series' time step as a plural unit for axis labels: `hours`, `days`, `15-minute steps`."""
    steps = pd.Series(index[1:] - index[:-1])
    if steps.empty:
        return "steps"
    text = step_text(steps.mode().iloc[0])
    count, unit = text.split("-")
    return f"{unit}s" if count == "1" else f"{text} steps"


def fixed_step(step: pd.DateOffset) -> pd.Timedelta | None:
    """The step of a fixed-length offset (`h`, `15min`, `D`), or None for a calendar one (`MS`, `W-SUN`, `QE`)."""
    if not isinstance(step, (pd.offsets.Tick, pd.offsets.Day)) or getattr(step, "n", 1) <= 0:
        return None
    return pd.Timedelta(step)


def grid_text(step: pd.DateOffset) -> str:
    """A grid's step in words: `1-hour`, `15-minute`, or the calendar alias such as `'MS'`."""
    fixed = fixed_step(step)
    return step_text(fixed) if fixed is not None else f"'{step.freqstr}'"


def infer_freq(index: pd.DatetimeIndex) -> str | None:
    """The index's time step as an offset alias: its own freq, pandas' inference, or the most common difference."""
    if index.freq is not None:
        return index.freq.freqstr
    if len(index) < 2:
        return None
    if len(index) >= 3:
        inferred = pd.infer_freq(index)
        if inferred:
            return inferred
    step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
    return to_offset(step).freqstr
