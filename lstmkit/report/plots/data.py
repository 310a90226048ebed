"""Figures of the data chapter (01): the series, its decomposition and correlations."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lstmkit.report.plots.style import MAX_POINTS, _save, envelope


def series(frame: pd.DataFrame, target: str, units: str = "value", path=None, last: int | None = None,
           span: str | None = None, max_points: int = MAX_POINTS) -> plt.Figure:
    """Every column over time, one panel each: the most recent `last` rows (all when None), `span` naming them in the
    title (e.g. `2 weeks`); beyond max_points rows each panel shows the min and max of each bucket of rows."""
    data = frame if last is None or last >= len(frame) else frame.iloc[-last:]
    fig, axes = plt.subplots(len(data.columns), 1, figsize=(11, 1.8 * len(data.columns) + 0.6), sharex=True)
    k = 1
    for ax, col in zip(np.atleast_1d(axes), data.columns):
        values, k = envelope(data[col], max_points)
        ax.plot(values.index, values, lw=0.7, color="tab:red" if col == target else "tab:blue")
        ax.set_ylabel(f"{col}\n({units})")
    np.atleast_1d(axes)[-1].set_xlabel("time")
    where = (f" (all {len(data):,} steps)" if len(data) == len(frame) else
             f" (last {len(data):,} steps" + (f": {span})" if span else ")"))
    thinned = f"; min and max of every {k:,} steps" if k > 1 else ""
    fig.suptitle(f"Input series and target '{target}' over time{where}{thinned}")
    return _save(fig, path)


def decomposition(result, target: str, units: str, path=None) -> plt.Figure:
    """Trend, seasonal components and remainder of a statsmodels MSTL/STL decomposition (long spans as envelopes)."""
    seasonal = result.seasonal if isinstance(result.seasonal, pd.DataFrame) else result.seasonal.to_frame("seasonal")
    parts = [("observed", result.observed), ("trend", result.trend)]
    parts += [(c, seasonal[c]) for c in seasonal.columns] + [("remainder", result.resid)]
    fig, axes = plt.subplots(len(parts), 1, figsize=(11, 1.6 * len(parts) + 0.6), sharex=True)
    k = 1
    for ax, (name, values) in zip(axes, parts):
        values, k = envelope(pd.Series(np.asarray(values), index=result.observed.index))
        ax.plot(values.index, values, lw=0.6)
        ax.set_ylabel(f"{name}\n({units})")
    axes[-1].set_xlabel("time")
    cycles = " and ".join(c.removeprefix("seasonal_") for c in seasonal.columns)
    thinned = f"; min and max of every {k:,} steps" if k > 1 else ""
    fig.suptitle(f"Seasonal decomposition of '{target}' over its last {len(result.observed):,} steps "
                 f"(MSTL: trend, cycles of {cycles} steps, remainder{thinned})")
    return _save(fig, path)


def correlations(frame: pd.DataFrame, max_rows: int | None = None, path=None) -> plt.Figure:
    """Pearson correlation between all columns (of the most recent `max_rows` rows when given, named in the title)."""
    cut = max_rows is not None and len(frame) > max_rows
    frame = frame.iloc[-max_rows:] if cut else frame
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sns.heatmap(frame.corr(), annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, ax=ax,
                cbar_kws={"label": "Pearson correlation (unitless)"})
    ax.set_title("Correlation between columns (same time step)" + (f"\n(the last {len(frame):,} steps)" if cut else ""))
    ax.set_xlabel("column")
    ax.set_ylabel("column")
    return _save(fig, path)


def lagged_correlations(frame: pd.DataFrame, target: str, max_lag: int, true_lags: dict | None = None,
                        unit: str = "steps", max_rows: int | None = None, path=None) -> plt.Figure:
    """Correlation of the target with each feature's value `lag` steps earlier, against lag (on the most recent
    `max_rows` rows when given, named in the title)."""
    cut = max_rows is not None and len(frame) > max_rows
    frame = frame.iloc[-max_rows:] if cut else frame
    fig, ax = plt.subplots(figsize=(10, 3.8))
    lags = np.arange(0, max_lag + 1)
    diff_target = frame[target].diff()
    for col in frame.columns:
        if col == target:
            continue
        corr = [diff_target.corr(frame[col].diff().shift(lag)) for lag in lags]
        line, = ax.plot(lags, corr, marker=".", label=col)
        if true_lags and col in true_lags:
            ax.axvline(true_lags[col], color=line.get_color(), ls="--", lw=1)
    ax.set_title(f"Correlation of step-to-step changes of '{target}' with earlier changes of each feature"
                 + (" (dashed: true lags)" if true_lags else "") + (f"\n(the last {len(frame):,} steps)" if cut else ""))
    ax.set_xlabel(f"lag ({unit} before the target)")
    ax.set_ylabel("correlation (unitless)")
    ax.legend(title="feature")
    return _save(fig, path)
