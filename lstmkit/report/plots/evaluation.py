"""Figures of the evaluation chapter (05): the comparison, forecasts, per-horizon errors, residuals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lstmkit.data.windows import Prepared
from lstmkit.report.plots.style import MAX_LINE_POINTS, _no_data, _save, forecaster_styles


def forecast(prepared: Prepared, forecasts: dict[str, np.ndarray], actual: np.ndarray, step: int, units: str,
             max_points: int = 336, path=None) -> plt.Figure:
    """Actual target and each forecaster's step-ahead forecast over (the start of) the test span."""
    rows = prepared.target_rows("test")[:, step - 1][:max_points]
    times = prepared.index[rows]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(times, prepared.to_original(actual[: len(rows), step - 1]), color="k", lw=1.2, label="actual")
    styles = forecaster_styles(forecasts)
    for name, f in forecasts.items():
        ax.plot(times, prepared.to_original(f[: len(rows), step - 1]), label=name, **styles[name])
    ax.set_title(f"Test span: {step}-step-ahead forecasts of '{prepared.target}' vs actual (first {len(rows)} windows)")
    ax.set_xlabel("time of the forecast target")
    ax.set_ylabel(f"{prepared.target} ({units})")
    ax.legend(ncol=5, loc="upper left", fontsize=9)
    return _save(fig, path)


def per_horizon(errors: pd.DataFrame, metric: str, units: str, path=None) -> plt.Figure:
    """One error metric per horizon step for every model, the ensemble and each baseline."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    few = len(errors) <= 24
    styles = forecaster_styles(errors.columns)
    for name in errors.columns:
        ax.plot(errors.index, errors[name], marker="o" if few else None, ms=4, label=name, **styles[name])
    ax.set_title(f"Test {metric.upper()} by forecast step")
    ax.set_xlabel("horizon step (steps ahead)")
    ax.set_ylabel(f"{metric.upper()} ({units})")
    if few:
        ax.set_xticks(errors.index)
    ax.legend(ncol=2 if len(errors.columns) > 6 else 1, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def comparison(table: pd.DataFrame, metric: str = "mse", units: str = "scaled", label: str = "scaled units",
               path=None) -> plt.Figure:
    """Test error of each forecaster (a comparison_table: models, ensemble, baselines) as bars, with the standard
    deviation over seeds as error bars, best at the top."""
    col = f"{metric} {units}"
    order = table.sort_values(col, ascending=False)
    styles = forecaster_styles(table.index)
    sd = order[f"{col} sd"].fillna(0.0).to_numpy()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(order) + 1.6))
    ax.barh(order.index, order[col], xerr=sd, color=[styles[n]["color"] for n in order.index], alpha=0.85,
            error_kw=dict(ecolor="0.2", capsize=3))
    for y, (value, spread) in enumerate(zip(order[col], sd)):
        ax.text(value + spread, y, f"  {value:.4g}" + (f" ± {spread:.2g}" if spread > 0 else ""), va="center",
                fontsize=8)
    ax.set_title(f"Test {metric.upper()} of every forecaster (error bars: standard deviation over seeds)")
    ax.set_xlabel(f"test {metric.upper()} ({label})")
    ax.set_ylabel("forecaster")
    ax.set_xlim(0, float((order[col] + sd).max()) * 1.3 or 1.0)
    return _save(fig, path)


def residuals(res: pd.DataFrame, units: str, lags: int = 48, unit: str = "steps", name: str = "the selected model",
              path=None) -> plt.Figure:
    """Residuals over time, their distribution, autocorrelation, and against the forecast."""
    from statsmodels.graphics.tsaplots import plot_acf

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    every = max(1, len(res) // MAX_LINE_POINTS)  # the line and the scatter draw at most about MAX_LINE_POINTS
    few = res.iloc[::every]
    axes[0, 0].plot(few.index, few["residual"], lw=0.6)
    axes[0, 0].axhline(0, color="k", lw=0.8)
    axes[0, 0].set_title("Residuals over the test span")
    axes[0, 0].set_xlabel("time")
    axes[0, 0].set_ylabel(f"actual - forecast ({units})")
    sns.histplot(res["residual"], kde=True, ax=axes[0, 1])
    axes[0, 1].set_title("Residual distribution")
    axes[0, 1].set_xlabel(f"actual - forecast ({units})")
    axes[0, 1].set_ylabel("count of test windows")
    if len(res) >= 4:
        plot_acf(res["residual"], lags=min(lags, len(res) // 2 - 1), ax=axes[1, 0])
    else:
        _no_data(axes[1, 0], f"{len(res)} test windows: too few for an autocorrelation")
    axes[1, 0].set_title("Residual autocorrelation (band: 95% for white noise)")
    axes[1, 0].set_xlabel(f"lag ({unit})")
    axes[1, 0].set_ylabel("autocorrelation (unitless)")
    axes[1, 1].scatter(few["forecast"], few["residual"], s=4, alpha=0.5)
    axes[1, 1].axhline(0, color="k", lw=0.8)
    axes[1, 1].set_title("Residual vs forecast")
    axes[1, 1].set_xlabel(f"forecast ({units})")
    axes[1, 1].set_ylabel(f"actual - forecast ({units})")
    fig.suptitle(f"Residual diagnostics of {name} (1-step-ahead, original units)"
                 + (f"; over time and vs forecast: every {every:,}th of {len(res):,} windows" if every > 1 else ""))
    return _save(fig, path)
