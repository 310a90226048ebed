"""Figures of the report: every one titled, with labelled axes and units."""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lstmkit.preprocessing import SPLITS, Prepared

SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
FORECASTER_STYLE = {"lstm": dict(color="tab:red", lw=1.6), "persistence": dict(color="tab:gray", ls=":"),
                    "seasonal_naive": dict(color="tab:purple", ls="--"), "linear": dict(color="tab:olive", ls="-."),
                    "nlinear": dict(color="tab:cyan", ls="-."), "autoreg": dict(color="tab:brown", ls=":")}

sns.set_theme(style="whitegrid", context="notebook")


def _save(fig: plt.Figure, path) -> plt.Figure:
    """Tidy date axes, lay out, and also write the figure as PNG when a path is given."""
    for ax in fig.axes:
        if isinstance(ax.xaxis.get_major_formatter(), (mdates.AutoDateFormatter, mdates.ConciseDateFormatter)):
            locator = mdates.AutoDateLocator(maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def series(frame: pd.DataFrame, target: str, units: str = "value", path=None, days: int | None = None) -> plt.Figure:
    """Every column over time, one panel each (optionally only the first `days`)."""
    data = frame if days is None else frame.iloc[: days * 24]
    fig, axes = plt.subplots(len(data.columns), 1, figsize=(11, 1.8 * len(data.columns) + 0.6), sharex=True)
    for ax, col in zip(np.atleast_1d(axes), data.columns):
        ax.plot(data.index, data[col], lw=0.7, color="tab:red" if col == target else "tab:blue")
        ax.set_ylabel(f"{col}\n({units})")
    np.atleast_1d(axes)[-1].set_xlabel("time")
    span = "" if days is None else f" (first {days} days)"
    fig.suptitle(f"Input series and target '{target}' over time{span}")
    return _save(fig, path)


def decomposition(result, target: str, units: str, path=None) -> plt.Figure:
    """Trend, seasonal components and remainder of a statsmodels MSTL/STL decomposition."""
    seasonal = result.seasonal if isinstance(result.seasonal, pd.DataFrame) else result.seasonal.to_frame("seasonal")
    parts = [("observed", result.observed), ("trend", result.trend)]
    parts += [(c, seasonal[c]) for c in seasonal.columns] + [("remainder", result.resid)]
    fig, axes = plt.subplots(len(parts), 1, figsize=(11, 1.6 * len(parts) + 0.6), sharex=True)
    for ax, (name, values) in zip(axes, parts):
        ax.plot(values.index, values, lw=0.6)
        ax.set_ylabel(f"{name}\n({units})")
    axes[-1].set_xlabel("time")
    fig.suptitle(f"Seasonal decomposition of '{target}' (MSTL: trend, daily and weekly cycles, remainder)")
    return _save(fig, path)


def correlations(frame: pd.DataFrame, path=None) -> plt.Figure:
    """Pearson correlation between all columns."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sns.heatmap(frame.corr(), annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, ax=ax,
                cbar_kws={"label": "Pearson correlation (unitless)"})
    ax.set_title("Correlation between columns (same time step)")
    ax.set_xlabel("column")
    ax.set_ylabel("column")
    return _save(fig, path)


def lagged_correlations(frame: pd.DataFrame, target: str, max_lag: int, true_lags: dict | None = None, path=None) -> plt.Figure:
    """Correlation of the target with each feature's value `lag` steps earlier, against lag."""
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
    ax.set_title(f"Correlation of hourly changes of '{target}' with earlier changes of each feature (dashed: true lags)")
    ax.set_xlabel("lag (hours before the target)")
    ax.set_ylabel("correlation (unitless)")
    ax.legend(title="feature")
    return _save(fig, path)


def splits(prepared: Prepared, units: str, path=None) -> plt.Figure:
    """The target coloured by the split each row belongs to."""
    fig, ax = plt.subplots(figsize=(11, 3.4))
    y = prepared.original[:, prepared.target_index]
    for s in SPLITS:
        a, b = prepared.bounds[s]
        ax.plot(prepared.index[a:b], y[a:b], lw=0.6, color=SPLIT_COLORS[s], label=f"{s} ({b - a} rows)")
    ax.set_title(f"Chronological split of '{prepared.target}': train, validation, test")
    ax.set_xlabel("time")
    ax.set_ylabel(f"{prepared.target} ({units})")
    ax.legend(loc="upper left")
    return _save(fig, path)


def scaled_distributions(prepared: Prepared, path=None) -> plt.Figure:
    """Distribution of each scaled channel per split: later splits may drift away from the training range."""
    rows = []
    for s in SPLITS:
        a, b = prepared.bounds[s]
        part = pd.DataFrame(prepared.scaled[a:b], columns=prepared.columns).melt(var_name="channel", value_name="scaled value")
        rows.append(part.assign(split=s))
    data = pd.concat(rows)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    sns.boxplot(data=data, x="channel", y="scaled value", hue="split", palette=SPLIT_COLORS, fliersize=1, ax=ax)
    ax.set_title("Scaled channels per split (scaler fitted on training rows only)")
    ax.set_xlabel("channel")
    ax.set_ylabel("scaled value (training standard units)")
    return _save(fig, path)


def window_example(prepared: Prepared, split: str = "val", position: int = 0, path=None) -> plt.Figure:
    """One window: the look-back inputs of the target and the horizon it must forecast."""
    origin = prepared.origins(split)[position]
    lb, h = prepared.lookback, prepared.horizon
    rows_in, rows_out = np.arange(origin - lb + 1, origin + 1), np.arange(origin + 1, origin + h + 1)
    y = prepared.scaled[:, prepared.target_index]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.plot(prepared.index[rows_in], y[rows_in], marker=".", label=f"look-back input ({lb} steps)")
    ax.plot(prepared.index[rows_out], y[rows_out], marker="o", color="tab:red", label=f"target ({h} steps)")
    boundary = prepared.bounds[split][0]
    if rows_in[0] < boundary:
        ax.axvline(prepared.index[boundary], color="k", ls="--", lw=1, label=f"start of {split} split")
    ax.set_title(f"First {split} window: inputs may look back across the boundary, targets never do")
    ax.set_xlabel("time")
    ax.set_ylabel(f"{prepared.target} (scaled)")
    ax.legend(loc="upper left")
    return _save(fig, path)


def trials(table: pd.DataFrame, path=None) -> plt.Figure:
    """Validation loss of each trial in order, and against learning rate and units."""
    done = table.dropna(subset=["val_loss"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    order = np.arange(1, len(done) + 1)
    axes[0].plot(order, done["val_loss"], "o-", label="trial")
    axes[0].plot(order, done["val_loss"].cummin(), color="tab:red", label="best so far")
    axes[0].set_xlabel("trial (order run)")
    axes[0].set_title("Objective by trial")
    axes[0].legend()
    sns.scatterplot(data=done, x="learning_rate", y="val_loss", hue="optimizer", size="layers", ax=axes[1])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("learning rate (log scale)")
    axes[1].set_title("Objective vs learning rate")
    sns.scatterplot(data=done, x="units", y="val_loss", hue="batch_size", palette="viridis", ax=axes[2])
    axes[2].set_xlabel("LSTM units per layer")
    axes[2].set_title("Objective vs units")
    for ax in axes:
        ax.set_ylabel("validation MSE (scaled)")
        ax.set_yscale("log")
    fig.suptitle("Hyperparameter search: validation loss of every trial")
    return _save(fig, path)


def learning_curves(history: pd.DataFrame, path=None) -> plt.Figure:
    """Training and validation loss per epoch, and the learning rate."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    axes[0].plot(history.index, history["loss"], label="training")
    axes[0].plot(history.index, history["val_loss"], label="validation")
    best = history["val_loss"].idxmin()
    axes[0].axvline(best, color="k", ls="--", lw=1, label=f"best epoch ({best}, weights restored)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("MSE (scaled, log scale)")
    axes[0].set_title("Learning curves")
    axes[0].legend()
    if "learning_rate" in history:
        axes[1].plot(history.index, history["learning_rate"], color="tab:green")
        axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("learning rate (log scale)")
    axes[1].set_title("Learning rate (halved on validation plateaus)")
    return _save(fig, path)


def forecast(prepared: Prepared, forecasts: dict[str, np.ndarray], actual: np.ndarray, step: int, units: str,
             max_points: int = 336, path=None) -> plt.Figure:
    """Actual target and each forecaster's step-ahead forecast over (the start of) the test span."""
    rows = prepared.target_rows("test")[:, step - 1][:max_points]
    times = prepared.index[rows]
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(times, prepared.to_original(actual[: len(rows), step - 1]), color="k", lw=1.2, label="actual")
    for name, f in forecasts.items():
        ax.plot(times, prepared.to_original(f[: len(rows), step - 1]), label=name, **FORECASTER_STYLE.get(name, {}))
    ax.set_title(f"Test span: {step}-step-ahead forecasts of '{prepared.target}' vs actual (first {len(rows)} windows)")
    ax.set_xlabel("time of the forecast target")
    ax.set_ylabel(f"{prepared.target} ({units})")
    ax.legend(ncol=5, loc="upper left", fontsize=9)
    return _save(fig, path)


def per_horizon(errors: pd.DataFrame, metric: str, units: str, path=None) -> plt.Figure:
    """One error metric per horizon step for the model and each baseline."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    few = len(errors) <= 24
    for name in errors.columns:
        ax.plot(errors.index, errors[name], marker="o" if few else None, label=name, **FORECASTER_STYLE.get(name, {}))
    ax.set_title(f"Test {metric.upper()} by forecast step")
    ax.set_xlabel("horizon step (steps ahead)")
    ax.set_ylabel(f"{metric.upper()} ({units})")
    if few:
        ax.set_xticks(errors.index)
    ax.legend()
    return _save(fig, path)


def residuals(res: pd.DataFrame, units: str, lags: int = 48, path=None) -> plt.Figure:
    """Residuals over time, their distribution, autocorrelation, and against the forecast."""
    from statsmodels.graphics.tsaplots import plot_acf

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    axes[0, 0].plot(res.index, res["residual"], lw=0.6)
    axes[0, 0].axhline(0, color="k", lw=0.8)
    axes[0, 0].set_title("Residuals over the test span")
    axes[0, 0].set_xlabel("time")
    axes[0, 0].set_ylabel(f"actual - forecast ({units})")
    sns.histplot(res["residual"], kde=True, ax=axes[0, 1])
    axes[0, 1].set_title("Residual distribution")
    axes[0, 1].set_xlabel(f"actual - forecast ({units})")
    axes[0, 1].set_ylabel("count of test windows")
    plot_acf(res["residual"], lags=min(lags, len(res) // 2 - 1), ax=axes[1, 0])
    axes[1, 0].set_title("Residual autocorrelation (band: 95% for white noise)")
    axes[1, 0].set_xlabel("lag (hours)")
    axes[1, 0].set_ylabel("autocorrelation (unitless)")
    axes[1, 1].scatter(res["forecast"], res["residual"], s=4, alpha=0.5)
    axes[1, 1].axhline(0, color="k", lw=0.8)
    axes[1, 1].set_title("Residual vs forecast")
    axes[1, 1].set_xlabel(f"forecast ({units})")
    axes[1, 1].set_ylabel(f"actual - forecast ({units})")
    fig.suptitle("Residual diagnostics of the LSTM (1-step-ahead, original units)")
    return _save(fig, path)


def attribution_heatmap(heatmap: pd.DataFrame, horizon_step: int, path=None) -> plt.Figure:
    """Mean |IG attribution| per lag and feature."""
    fig, ax = plt.subplots(figsize=(11, 3.2))
    data = heatmap.T
    sns.heatmap(data, cmap="magma", robust=True, ax=ax,  # colours clipped at the 2nd/98th percentile: one hot cell
                cbar_kws={"label": "mean |attribution| (scaled units)"})  # must not hide the rest
    step = max(1, len(data.columns) // 16)
    ax.set_xticks(np.arange(0, len(data.columns), step) + 0.5)
    ax.set_xticklabels(data.columns[::step], rotation=0)
    ax.set_title(f"Integrated Gradients: where the {horizon_step}-step-ahead forecast looks (mean over test windows)")
    ax.set_xlabel("lag (hours before the explained target)")
    ax.set_ylabel("input channel")
    return _save(fig, path)


def importance_bars(shares: pd.Series, path=None) -> plt.Figure:
    """Share of attribution mass per feature."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.barplot(x=shares.values * 100, y=shares.index, ax=ax, color="tab:blue")
    ax.set_title("Feature importance (share of total |IG attribution|)")
    ax.set_xlabel("share of attribution (%)")
    ax.set_ylabel("input channel")
    return _save(fig, path)


def lag_profiles(heatmap: pd.DataFrame, true_lags: dict | None = None, path=None) -> plt.Figure:
    """Attribution per lag for each feature, with the generator's true lags marked."""
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for col in heatmap.columns:
        line, = ax.plot(heatmap.index, heatmap[col], marker=".", label=col)
        if true_lags and col in true_lags:
            ax.axvline(true_lags[col], color=line.get_color(), ls="--", lw=1)
    ax.set_title("Attribution by lag for each input channel" + (" (dashed: true driving lags)" if true_lags else ""))
    ax.set_xlabel("lag (hours before the explained target)")
    ax.set_ylabel("mean |attribution| (scaled units)")
    ax.legend(title="channel")
    return _save(fig, path)


def completeness(sums: np.ndarray, deltas: np.ndarray, path=None) -> plt.Figure:
    """Completeness check: sum of attributions against f(x) - f(baseline) for each window."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(deltas, sums, s=8)
    lim = [min(deltas.min(), sums.min()), max(deltas.max(), sums.max())]
    ax.plot(lim, lim, color="k", lw=0.8, label="perfect completeness")
    ax.set_title("IG completeness per window")
    ax.set_xlabel("f(x) - f(baseline) (scaled)")
    ax.set_ylabel("sum of attributions (scaled)")
    ax.legend()
    return _save(fig, path)
