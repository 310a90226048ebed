"""Figures of the report: every one titled, with labelled axes and units."""

from __future__ import annotations

import re

import matplotlib as mpl
import matplotlib.colors as mcolors
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
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


MAX_POINTS = 4000  # points per panel of a long-span figure: beyond this, min and max of each bucket of rows


def envelope(values: pd.Series, max_points: int = MAX_POINTS) -> tuple[pd.Series, int]:
    """A long series reduced for plotting: the min and the max of each bucket of k rows (at the bucket's first time),
    so that peaks stay visible; returns the reduced series and k (1: unchanged)."""
    n = len(values)
    k = int(np.ceil(2 * n / max_points)) if n > max_points else 1
    if k == 1:
        return values, 1
    starts = np.arange(0, n, k)
    array = values.to_numpy()
    lows, highs = np.minimum.reduceat(array, starts), np.maximum.reduceat(array, starts)
    times = values.index[starts]
    return pd.Series(np.column_stack([lows, highs]).ravel(), index=times.repeat(2), name=values.name), k


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


MAX_LINE_POINTS = 50_000  # points of a line or scatter over all rows or windows; longer ones are drawn every k-th
MAX_BOX_ROWS = 200_000    # rows per split behind the box plots of scaled channels


def splits(prepared: Prepared, units: str, path=None) -> plt.Figure:
    """The target coloured by the split each row belongs to."""
    fig, ax = plt.subplots(figsize=(11, 3.4))
    every = max(1, len(prepared.scaled) // MAX_LINE_POINTS)  # a long series is drawn every `every` rows
    y = np.full(len(prepared.scaled), np.nan)
    y[::every] = prepared.to_original(prepared.scaled[::every, prepared.target_index])
    for s in SPLITS:
        a, b = prepared.bounds[s]
        ax.plot(prepared.index[a:b:every], y[a:b:every], lw=0.6, color=SPLIT_COLORS[s], label=f"{s} ({b - a:,} rows)")
    ax.set_title(f"Chronological split of '{prepared.target}': train, validation, test"
                 + (f" (every {every:,}th row drawn)" if every > 1 else ""))
    ax.set_xlabel("time")
    ax.set_ylabel(f"{prepared.target} ({units})")
    ax.legend(loc="upper left")
    return _save(fig, path)


def scaled_distributions(prepared: Prepared, path=None) -> plt.Figure:
    """Distribution of each scaled channel per split: later splits may drift away from the training range."""
    rows, sampled = [], False
    for s in SPLITS:
        a, b = prepared.bounds[s]
        every = max(1, (b - a) // MAX_BOX_ROWS)  # long splits: an evenly spaced sample of rows
        sampled |= every > 1
        part = pd.DataFrame(prepared.scaled[a:b:every], columns=prepared.columns).melt(var_name="channel", value_name="scaled value")
        rows.append(part.assign(split=s))
    data = pd.concat(rows)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    sns.boxplot(data=data, x="channel", y="scaled value", hue="split", palette=SPLIT_COLORS, fliersize=1, ax=ax)
    ax.set_title("Scaled channels per split (scaler fitted on training rows only)"
                 + (f"; at most {MAX_BOX_ROWS:,} evenly spaced rows per split" if sampled else ""))
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


def residuals(res: pd.DataFrame, units: str, lags: int = 48, unit: str = "steps", path=None) -> plt.Figure:
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
    fig.suptitle("Residual diagnostics of the LSTM (1-step-ahead, original units)"
                 + (f"; over time and vs forecast: every {every:,}th of {len(res):,} windows" if every > 1 else ""))
    return _save(fig, path)


# ---------------------------------------------------------------- tuning chapter

STATUS_STYLE = {"COMPLETED": dict(color="tab:blue", marker="o"), "PRUNED": dict(color="tab:orange", marker="v"),
                "FAILED": dict(color="tab:red", marker="X"), "INVALID": dict(color="tab:red", marker="X")}
PARAM_LABELS = {"layers": "stacked LSTM layers (count)", "units": "units per layer (LSTM cells)",
                "dropout": "dropout (fraction of units)", "learning_rate": "learning rate (per update)",
                "batch_size": "batch size (windows)", "optimizer": "optimizer (name)",
                "normalization": "normalization (layer type)", "lookback": "look-back (time steps)"}
LOSS_LABEL = "validation MSE (scaled, log scale)"


def _param_label(param) -> str:
    """Axis label of a tuned hyperparameter with its unit (and the log scale when its range has one)."""
    label = PARAM_LABELS.get(param.name, param.name)
    if not param.log:
        return label
    return label[:-1] + ", log scale)" if label.endswith(")") else label + " (log scale)"


def _statuses(table: pd.DataFrame) -> np.ndarray:
    """Upper-case status of each trial (all COMPLETED when the table has no status column)."""
    if "status" not in table:
        return np.full(len(table), "COMPLETED", dtype=object)
    return table["status"].astype(str).str.strip().str.upper().to_numpy()


def _losses(table: pd.DataFrame, column: str = "val_loss") -> np.ndarray:
    """One loss column as floats (NaN where missing or unreadable)."""
    if column not in table:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)


def _trial_numbers(table: pd.DataFrame) -> np.ndarray:
    """Trial numbers from the index (start order), or 0..n-1 when the index is not numeric."""
    numbers = pd.to_numeric(pd.Series(table.index), errors="coerce").to_numpy(dtype=float)
    return np.arange(len(table), dtype=float) if np.isnan(numbers).any() else numbers


def _completed(table: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETED trials with a finite positive objective, with `val_loss` as floats."""
    loss = _losses(table)
    keep = (_statuses(table) == "COMPLETED") & np.isfinite(loss) & (loss > 0)
    done = table[keep].copy()
    done["val_loss"] = loss[keep]
    return done


def _tuned(table: pd.DataFrame, space) -> list:
    """The tuned parameters of `space` that the table has a column for (a ValueError when there is none)."""
    params = [p for p in space.params if p.name in table.columns]
    if not params:
        raise ValueError("the trials table has no column for any tuned hyperparameter "
                         f"(tuned: {', '.join(space.names) or 'none'})")
    return params


def _same(value, choice) -> bool:
    """Whether a table value (perhaps read back from CSV: '64', 64.0) is the declared choice."""
    if value == choice or str(value) == str(choice):
        return True
    try:
        return float(value) == float(choice)
    except (TypeError, ValueError):
        return False


def _categories(values: pd.Series, param) -> tuple[list, np.ndarray]:
    """The declared choices (then any other value found in the table) and each value's position among them."""
    labels, codes = list(param.choices), np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if pd.isna(v):
            continue
        match = next((k for k, c in enumerate(labels) if _same(v, c)), None)
        if match is None:
            labels.append(v)
            match = len(labels) - 1
        codes[i] = match
    return labels, codes


def _no_data(ax: plt.Axes, text: str = "no completed trial with a finite loss") -> None:
    """Say in the middle of an empty panel why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _fmt(value: float, integer: bool = False) -> str:
    """A tick label: whole numbers for integer parameters, three significant digits otherwise."""
    return str(int(round(value))) if integer else f"{value:.3g}"


def _range_axis(values: np.ndarray, lo: float, hi: float, log: bool, integer: bool) -> tuple[np.ndarray, list]:
    """Numeric values mapped to [0, 1] over [lo, hi] (log10 when `log`), with a few (position, label) ticks."""
    def f(v):
        v = np.asarray(v, dtype=float)
        return np.log10(np.where(v > 0, v, np.nan)) if log else v

    if not hi > lo:  # a constant axis: everything in the middle, no division by zero
        return np.where(np.isfinite(values), 0.5, np.nan), [(0.5, _fmt(lo, integer))]
    span = f(hi) - f(lo)
    pos = (f(values) - f(lo)) / span
    locator = (mticker.LogLocator(numticks=6) if log
               else mticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10], integer=integer))
    inside = [t for t in locator.tick_values(lo, hi) if lo - 1e-12 * abs(hi) <= t <= hi + 1e-12 * abs(hi)]
    ticks: list = []
    for t in [lo, hi, *inside]:  # the ends first, then inner ticks that are not crowded against one kept
        p = float((f(t) - f(lo)) / span)
        if all(abs(p - q) > 0.08 for q, _ in ticks):
            ticks.append((p, _fmt(t, integer)))
    return pos, ticks


def _parallel_axis(values: pd.Series, param) -> tuple[np.ndarray, list]:
    """One hyperparameter's values on its parallel-coordinates axis in [0, 1], and its ticks."""
    if not param.is_range:
        labels, codes = _categories(values, param)
        m = len(labels)
        spot = (lambda k: k / (m - 1)) if m > 1 else (lambda k: 0.5 + 0 * k)
        every = max(1, -(-m // 8))
        return spot(codes), [(float(spot(k)), str(labels[k])) for k in range(0, m, every)]
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    seen = v[np.isfinite(v) & ((v > 0) | (not param.log))]
    lo = min([param.min, *seen.tolist()]) if param.min is not None else np.nanmin(seen, initial=0.0)
    hi = max([param.max, *seen.tolist()]) if param.max is not None else np.nanmax(seen, initial=0.0)
    return _range_axis(v, float(lo), float(hi), param.log, param.type is int)


def trials(table: pd.DataFrame, path=None) -> plt.Figure:
    """Objective of every trial by start order, coloured by status, with the best so far over completed trials."""
    fig, ax = plt.subplots(figsize=(11, 4))
    x, loss, status = _trial_numbers(table), _losses(table), _statuses(table)
    finite = np.isfinite(loss) & (loss > 0)
    for name in dict.fromkeys(["COMPLETED", "PRUNED", "FAILED", *status]):
        style = STATUS_STYLE.get(name, dict(color="tab:gray", marker="s"))
        mine = status == name
        if (mine & finite).any():
            ax.scatter(x[mine & finite], loss[mine & finite], s=30, alpha=0.85, zorder=3,
                       label=f"{name.lower()} ({(mine & finite).sum()})", **style)
        if (mine & ~finite).any():  # no loss to place: a cross at the top edge (x in data, y in axes units)
            ax.scatter(x[mine & ~finite], np.full((mine & ~finite).sum(), 0.97), transform=ax.get_xaxis_transform(),
                       s=40, zorder=3, clip_on=False, color=style["color"], marker="x",
                       label=f"{name.lower()}, no loss ({(mine & ~finite).sum()}, at top edge)")
    done = (status == "COMPLETED") & finite
    if done.any():
        order = np.argsort(x[done], kind="stable")
        xs, best = x[done][order], np.minimum.accumulate(loss[done][order])
        if x.max() > xs[-1]:  # carry the best so far on to the last trial started
            xs, best = np.append(xs, x.max()), np.append(best, best[-1])
        ax.step(xs, best, where="post", color="k", lw=1.6, zorder=2, gid="best_so_far",
                label=f"best so far over completed trials (final {best[-1]:.3g})")
    else:
        _no_data(ax)
    if finite.any():
        ax.set_yscale("log")
    ax.set_title("Objective by trial")
    ax.set_xlabel("trial number (start order)")
    ax.set_ylabel(LOSS_LABEL)
    if 0 < len(x) <= 20:
        ax.set_xticks(np.unique(x))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    return _save(fig, path)


def param_effects(table: pd.DataFrame, space, path=None) -> plt.Figure:
    """Objective against each tuned hyperparameter, one panel each, over the completed trials (best one starred)."""
    params, done = _tuned(table, space), _completed(table)
    ncols = min(4, len(params))
    nrows = -(-len(params) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.2 * nrows + 0.8), squeeze=False)
    for ax in axes.flat[len(params):]:
        fig.delaxes(ax)
    loss = done["val_loss"].to_numpy()
    best = int(np.argmin(loss)) if len(done) else None
    rng = np.random.default_rng(0)
    legend: dict = {}
    for k, (ax, p) in enumerate(zip(axes.flat, params)):
        if p.is_range:
            values = pd.to_numeric(done[p.name], errors="coerce").to_numpy(dtype=float)
            ax.scatter(values, loss, s=22, alpha=0.7, color="tab:blue", label="completed trial")
            if p.log and len(done):  # (a log axis without data cannot place its ticks)
                ax.set_xscale("log")
            elif p.type is int:
                ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        else:  # strip plot: choices at 0..m-1 in declared order, points jittered, median as a bar
            labels, values = _categories(done[p.name], p)
            ax.scatter(values + rng.uniform(-0.15, 0.15, len(values)), loss, s=22, alpha=0.7, color="tab:blue",
                       label="completed trial")
            for i in range(len(labels)):
                if (values == i).any():
                    ax.hlines(np.median(loss[values == i]), i - 0.3, i + 0.3, color="k", lw=2.5, zorder=4,
                              label="median per choice")
            ax.set_xticks(range(len(labels)), [str(c) for c in labels])
            ax.set_xlim(-0.5, len(labels) - 0.5)
        if best is not None:
            ax.scatter(values[best], loss[best], marker="*", s=240, color="red", edgecolor="k", zorder=5,
                       label=f"best trial (#{done.index[best]}, {loss[best]:.3g})")
            ax.set_yscale("log")
        else:
            _no_data(ax)
        ax.set_title(p.name)
        ax.set_xlabel(_param_label(p))
        ax.set_ylabel(LOSS_LABEL if k % ncols == 0 else "")
        legend.update({label: h for h, label in zip(*ax.get_legend_handles_labels()) if label not in legend})
    if legend:
        axes.flat[0].legend(legend.values(), legend.keys(), fontsize=8, loc="best")
    fig.suptitle("Effect of each hyperparameter on the objective")
    return _save(fig, path)


def parallel_coordinates(table: pd.DataFrame, space, path=None) -> plt.Figure:
    """Completed trials as polylines across one axis per tuned hyperparameter and a final val_loss axis."""
    params, done = _tuned(table, space), _completed(table)
    loss = done["val_loss"].to_numpy()
    columns = [_parallel_axis(done[p.name], p) for p in params]
    lo, hi = (loss.min(), loss.max()) if len(loss) else (1.0, 1.0)
    columns.append(_range_axis(loss, lo, hi, log=True, integer=False) if len(loss) else (loss, []))
    names = [p.name + ("\n(log)" if p.log else "") for p in params] + ["val_loss\n(log)"]
    positions = np.column_stack([pos for pos, _ in columns]) if len(loss) else np.empty((0, len(columns)))
    n = len(columns)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * n + 2.5), 5))
    # reversed sequential map: the lowest losses darkest and most visible (its palest end cut off, too faint on white)
    cmap = mcolors.ListedColormap(plt.get_cmap("YlGnBu_r")(np.linspace(0, 0.8, 256)))
    norm = mcolors.LogNorm(lo, hi) if hi > lo else mcolors.Normalize(lo * 0.9, hi * 1.1)
    xs = np.arange(n)
    best_row = int(np.argmin(loss)) if len(loss) else -1  # the first of tied best trials
    order = [i for i in np.argsort(-loss, kind="stable") if i != best_row] + [best_row] * (best_row >= 0)
    for i in order:  # worst first, the best drawn last and on top
        best = i == best_row
        ax.plot(xs, positions[i], color=cmap(norm(loss[i])), lw=3.2 if best else 1.1, alpha=1.0 if best else 0.75,
                zorder=3 if best else 2, solid_capstyle="round",
                label=f"best trial (#{done.index[i]}, validation MSE {loss[i]:.3g})" if best else None)
    ax.vlines(xs, 0, 1, color="k", lw=1, zorder=1)
    for x, (_, ticks) in zip(xs, columns):
        ax.hlines([p for p, _ in ticks], x - 0.03, x, color="k", lw=1, zorder=1)
        for p, text in ticks:
            ax.text(x - 0.05, p, text, ha="right", va="center", fontsize=8, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    if not len(loss):
        _no_data(ax)
    ax.set_xticks(xs, names)
    ax.set_yticks([])
    ax.grid(False)
    ax.set_xlim(-0.6, n - 0.7)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("hyperparameter (each axis spans its searched range; categories in declared order)")
    ax.set_ylabel("normalised position (labels: real values)")
    ax.set_title("Parallel coordinates of the completed trials")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="validation MSE (scaled)")
    if len(loss):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize=9)
    return _save(fig, path)


def fold_losses(table: pd.DataFrame, path=None) -> plt.Figure:
    """Validation loss on each walk-forward fold: every completed trial, the best one, and the mean per fold."""
    folds = sorted((int(m.group(1)), c) for c in table.columns if (m := re.fullmatch(r"fold_(\d+)", str(c))))
    if not folds:
        raise ValueError("fold_losses needs per-fold validation losses (columns fold_1 ... fold_k), which only a "
                         "walk-forward cross-validated search (tuning.cv_folds >= 2) records; this table has none")
    done = _completed(table)
    numbers = np.array([k for k, _ in folds])
    losses = np.column_stack([_losses(done, c) for _, c in folds]) if len(done) else np.empty((0, len(folds)))
    losses[~(losses > 0)] = np.nan  # nothing below zero or NaN on a log axis
    fig, ax = plt.subplots(figsize=(8, 4))
    for row in losses:
        ax.plot(numbers, row, color="0.6", lw=0.8, alpha=0.7, marker=".", zorder=2)
    if len(done):
        ax.lines[0].set_label(f"completed trial ({len(done)})")
        best = int(np.argmin(done["val_loss"].to_numpy()))
        ax.plot(numbers, losses[best], color="tab:red", lw=2.2, marker="o", zorder=4,
                label=f"best trial (#{done.index[best]}, mean {done['val_loss'].iloc[best]:.3g})")
        mean = pd.DataFrame(losses).mean(axis=0).to_numpy()  # skips NaN quietly, NaN where a fold has no loss
        ax.plot(numbers, mean, color="k", ls="--", lw=1.8, zorder=3, label="mean over completed trials")
        ax.legend(fontsize=9)
        if np.isfinite(losses).any():
            ax.set_yscale("log")
    else:
        _no_data(ax)
    ax.set_xticks(numbers)
    ax.set_xlim(numbers.min() - 0.3, numbers.max() + 0.3)
    ax.set_title("Validation loss per fold")
    ax.set_xlabel("walk-forward fold (later = more training data)")
    ax.set_ylabel(LOSS_LABEL)
    return _save(fig, path)


def importance(importances: pd.Series, path=None) -> plt.Figure:
    """Share of the objective's variance explained by each hyperparameter (fANOVA), largest at the top."""
    if importances is None or len(importances) == 0:
        raise ValueError("no hyperparameter importances to plot (tuning.param_importance gives None with fewer "
                         "than three completed trials or no varying hyperparameter)")
    shares = pd.to_numeric(pd.Series(importances), errors="coerce").fillna(0.0).sort_values(kind="stable")
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(shares) + 1.6))
    bars = ax.barh(np.arange(len(shares)), shares.to_numpy(), color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in shares], padding=3, fontsize=9)
    ax.set_yticks(np.arange(len(shares)), [str(name) for name in shares.index])
    ax.set_xlim(0, max(float(shares.max()), 1e-9) * 1.18)
    ax.set_title("Hyperparameter importance")
    ax.set_xlabel("importance (share of objective variance, fANOVA)")
    ax.set_ylabel("hyperparameter")
    return _save(fig, path)


def attribution_heatmap(heatmap: pd.DataFrame, horizon_step: int, unit: str = "steps", path=None) -> plt.Figure:
    """Mean |IG attribution| per lag and feature."""
    fig, ax = plt.subplots(figsize=(11, 3.2))
    data = heatmap.T
    sns.heatmap(data, cmap="magma", robust=True, ax=ax,  # colours clipped at the 2nd/98th percentile: one hot cell
                cbar_kws={"label": "mean |attribution| (scaled units)"})  # must not hide the rest
    step = max(1, len(data.columns) // 16)
    ax.set_xticks(np.arange(0, len(data.columns), step) + 0.5)
    ax.set_xticklabels(data.columns[::step], rotation=0)
    ax.set_title(f"Integrated Gradients: where the {horizon_step}-step-ahead forecast looks (mean over test windows)")
    ax.set_xlabel(f"lag ({unit} before the explained target)")
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


def lag_profiles(heatmap: pd.DataFrame, true_lags: dict | None = None, unit: str = "steps", path=None) -> plt.Figure:
    """Attribution per lag for each feature, with the generator's true lags marked."""
    fig, ax = plt.subplots(figsize=(11, 3.8))
    for col in heatmap.columns:
        line, = ax.plot(heatmap.index, heatmap[col], marker=".", label=col)
        if true_lags and col in true_lags:
            ax.axvline(true_lags[col], color=line.get_color(), ls="--", lw=1)
    values = heatmap.to_numpy(dtype=float)
    positive = values[values > 0]
    log = positive.size > 0 and positive.max() > 50 * np.median(positive)  # one dominant lag would flatten the rest
    if log:
        ax.set_yscale("log")
    ax.set_title("Attribution by lag for each input channel" + (" (dashed: true driving lags)" if true_lags else "")
                 + (" (log scale)" if log else ""))
    ax.set_xlabel(f"lag ({unit} before the explained target)")
    ax.set_ylabel("mean |attribution| (scaled units" + (", log scale)" if log else ")"))
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


ATTRIBUTION_CMAP = "RdBu_r"  # diverging, centred on zero: red = pushes the explained forecast up, blue = down
ATTRIBUTION_LABEL = "attribution (scaled output units)"


def _symmetric_norm(values: np.ndarray, percentile: float = 100.0) -> mcolors.Normalize:
    """Colour scale centred on zero, from -m to m with m the given percentile of |values| (1 when all are zero)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    m = float(np.percentile(finite, percentile)) if finite.size else 0.0
    if m <= 0:
        m = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return mcolors.Normalize(vmin=-m, vmax=m)


def window_attribution(window: np.ndarray, attributions: np.ndarray, features: list[str], forecast: np.ndarray,
                       actual: np.ndarray, horizon_step: int, units: str, title: str | None = None,
                       path=None) -> plt.Figure:
    """One window's inputs per feature with their signed attributions underlaid, beside its forecast vs actual."""
    x = np.asarray(window, dtype=float)
    a = np.asarray(attributions, dtype=float)
    x, a = (x.reshape(-1, 1) if x.ndim == 1 else x), (a.reshape(-1, 1) if a.ndim == 1 else a)
    f, y = np.ravel(forecast).astype(float), np.ravel(actual).astype(float)
    features = [str(c) for c in features]
    if x.ndim != 2 or x.shape != a.shape or x.shape[1] != len(features):
        raise ValueError(f"window {x.shape} and attributions {a.shape} must both be (lag, feature) "
                         f"with {len(features)} features")
    if len(f) != len(y) or not 1 <= horizon_step <= len(f):
        raise ValueError(f"forecast ({len(f)}) and actual ({len(y)}) must have the same horizon, "
                         f"and horizon_step ({horizon_step}) must lie in 1..{len(f)}")
    lookback, n_feat = x.shape
    steps = np.arange(-(lookback - 1), 1)
    norm, cmap = _symmetric_norm(a), mpl.colormaps[ATTRIBUTION_CMAP]
    bulk = np.abs(a) <= 4 * _symmetric_norm(a, 99).vmax  # a few dominant inputs (e.g. a normalised window's last
    clipped = not bulk.all()                              # value) would flatten every other bar: cut them at the
    if clipped:                                           # largest of the rest and print their values instead
        norm = _symmetric_norm(a[bulk])
    fig = plt.figure(figsize=(13, max(3.8, 1.25 * n_feat + 1.5)))
    grid = fig.add_gridspec(n_feat, 3, width_ratios=[3.2, 0.07, 1.7])
    panels = []
    for i, name in enumerate(features):
        ax = fig.add_subplot(grid[i, 0], sharex=panels[0] if panels else None, label=f"feature panel {name}")
        under = ax.twinx()
        under.set_label(f"attribution underlay {name}")
        under.bar(steps, np.clip(a[:, i], norm.vmin, norm.vmax), width=1.0, color=cmap(norm(a[:, i])), alpha=0.75,
                  linewidth=0)
        under.set_ylim(norm.vmin * 1.15, norm.vmax * 1.15)  # same symmetric scale in every panel: bars compare
        for lag in np.flatnonzero(np.abs(a[:, i]) > norm.vmax):
            under.annotate(f"{a[lag, i]:.3g}", (steps[lag], np.sign(a[lag, i]) * norm.vmax), fontsize=7, ha="right",
                           va="bottom" if a[lag, i] > 0 else "top", color="tab:red" if a[lag, i] > 0 else "tab:blue")
        under.axhline(0, color="0.5", lw=0.5)
        under.set_ylabel("attribution\n(scaled out.)", fontsize=8)
        under.tick_params(labelsize=7)
        under.grid(False)
        ax.set_zorder(under.get_zorder() + 1)  # the input line is drawn over the bars
        ax.patch.set_visible(False)
        ax.plot(steps, x[:, i], color="k", lw=1.0, marker="." if lookback <= 72 else None, ms=4)
        ax.set_ylabel(f"{name} (scaled)", fontsize=9)
        ax.tick_params(labelbottom=i == n_feat - 1)
        panels.append(ax)
    panels[0].set_xlim(steps[0] - 0.5, 0.5)
    panels[-1].set_xlabel("time step relative to the forecast origin (0 = last input)")
    panels[0].set_title("Inputs (black) and their attributions (bars: red = pushes the forecast up, blue = down)"
                        + ("\nbars beyond the scale are cut and labelled with their value" if clipped else ""),
                        fontsize=10)
    cax = fig.add_subplot(grid[:, 1], label="colorbar")
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, label=ATTRIBUTION_LABEL,
                 extend="both" if clipped else "neither")
    right = fig.add_subplot(grid[:, 2], label="forecast panel")
    horizon = np.arange(1, len(f) + 1)
    marker = "o" if len(f) <= 48 else None
    right.plot(horizon, y, color="k", lw=1.2, marker=marker, ms=3, label="actual")
    right.plot(horizon, f, color="tab:red", lw=1.4, marker=marker, ms=3, label="forecast")
    right.axvline(horizon_step, color="tab:purple", ls="--", lw=1, label=f"explained step ({horizon_step})")
    right.scatter([horizon_step], [f[horizon_step - 1]], s=70, facecolors="none", edgecolors="tab:purple", zorder=5)
    right.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    right.set_xlabel("horizon step (steps ahead)")
    right.set_ylabel(f"target ({units})")
    right.set_title("Forecast vs actual over the horizon", fontsize=10)
    right.legend(fontsize=8, loc="best")
    fig.suptitle(title or f"Window attribution: which inputs pushed the {horizon_step}-step forecast up or down")
    return _save(fig, path)


def window_heatmaps(values: np.ndarray, features: list[str], windows_labels: list[str], horizon_step: int,
                    path=None) -> plt.Figure:
    """Signed lag x feature attributions of a few windows, side by side on one robust symmetric colour scale."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or not 1 <= v.shape[0] <= 6 or v.shape[2] != len(features) or len(windows_labels) != v.shape[0]:
        raise ValueError(f"values {v.shape} must be (k <= 6 windows, lag, {len(features)} features) "
                         f"with one label per window ({len(windows_labels)} given)")
    k, lookback, n_feat = v.shape
    norm = _symmetric_norm(v, 99)  # robust: one extreme cell must not wash out the rest
    fig = plt.figure(figsize=(min(2.2 + 0.35 * n_feat, 4.2, 15 / k) * k + 1.2, 5.2))
    grid = fig.add_gridspec(1, k + 1, width_ratios=[1] * k + [0.06])
    lo, hi = horizon_step, lookback - 1 + horizon_step  # lag before the explained target of the last / first input
    axes = []
    for i in range(k):
        ax = fig.add_subplot(grid[0, i], sharey=axes[0] if axes else None, label=f"window panel {i}")
        image = ax.imshow(v[i], aspect="auto", cmap=ATTRIBUTION_CMAP, norm=norm, interpolation="nearest",
                          extent=(-0.5, n_feat - 0.5, lo - 0.5, hi + 0.5), origin="upper")
        ax.set_xticks(np.arange(n_feat), [str(c) for c in features], rotation=90 if n_feat > 3 else 0, fontsize=8)
        ax.set_xlabel("feature")
        ax.set_title(str(windows_labels[i]), fontsize=9)
        ax.grid(False)
        if i:
            ax.tick_params(labelleft=False)
        axes.append(ax)
    axes[0].set_ylabel(f"lag (steps before the explained target;\n{lo} = last input, at the bottom)")
    fig.colorbar(image, cax=fig.add_subplot(grid[0, k], label="colorbar"), label=ATTRIBUTION_LABEL, extend="both")
    fig.suptitle(f"Signed attributions of chosen windows ({horizon_step}-step-ahead forecast; "
                 "red = pushes it up, blue = down)")
    return _save(fig, path)


def method_agreement(shares: pd.DataFrame, agreement: pd.DataFrame, level: str, path=None) -> plt.Figure:
    """Each method's normalised importance per feature or lag block, and the methods' rank agreement."""
    if shares.empty or agreement.empty:
        raise ValueError("method_agreement needs at least one method and one row of importances")
    data = shares.apply(pd.to_numeric, errors="coerce").fillna(0.0).abs()
    totals = data.sum()
    data = data / totals.where(totals > 0, 1.0)  # every method's column sums to 1 (or stays all zero)
    n_rows, n_methods = data.shape
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(4.2, 0.32 * n_rows * max(1, n_methods / 2) + 1.8)),
                                      gridspec_kw={"width_ratios": [1.3, 1]})
    height = 0.8 / n_methods
    centres = np.arange(n_rows)
    for j, method in enumerate(data.columns):
        left.barh(centres - 0.4 + height * (j + 0.5), data[method].to_numpy(), height=height, label=str(method))
    left.set_yticks(centres, [str(r) for r in data.index])
    left.set_ylim(n_rows - 0.5, -0.5)  # first row at the top
    left.xaxis.set_major_formatter(mticker.PercentFormatter(1.0))
    left.set_xlabel("normalised importance (% of each method's total)")
    left.set_ylabel(level)
    left.set_title(f"Importance per {level} by method")
    left.legend(title="method", fontsize=8)
    sns.heatmap(agreement.astype(float), annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, square=True, ax=right,
                cbar_kws={"label": "Spearman rank correlation (unitless)"})
    right.set_title(f"Spearman rank agreement over {level}s")
    right.set_xlabel("method")
    right.set_ylabel("method")
    fig.suptitle("Do the attribution methods agree?")
    return _save(fig, path)


def ground_truth_ranks(scores: pd.DataFrame, path=None) -> plt.Figure:
    """Share of attribution on each planted (feature, lag) pair, with its rank, against the uniform share."""
    missing = {"rank", "share", "uniform"} - set(scores.columns)
    if scores.empty or missing:
        raise ValueError(f"ground_truth_ranks needs rows with columns rank, share and uniform (missing: {sorted(missing)})")
    share = pd.to_numeric(scores["share"], errors="coerce").fillna(0.0).to_numpy()
    uniform = float(pd.to_numeric(scores["uniform"], errors="coerce").iloc[0])
    pairs = round(1 / uniform) if np.isfinite(uniform) and uniform > 0 else None
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(scores) + 1.9))
    bars = ax.barh(np.arange(len(scores)), share, color="tab:blue")
    labels = []
    for r in scores["rank"]:
        known = pd.notna(r) and str(r) not in ("", "-")
        labels.append(f"rank {int(float(r))}" + (f" of {pairs}" if pairs else "") if known else "rank -")
    ax.bar_label(bars, labels=labels, padding=3, fontsize=9)
    if np.isfinite(uniform):
        ax.axvline(uniform, color="k", ls="--", lw=1,
                   label=f"uniform share (1/{pairs} = {uniform:.2%})" if pairs else f"uniform share ({uniform:.2%})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(np.arange(len(scores)), [str(i) for i in scores.index])
    ax.set_ylim(len(scores) - 0.5, -0.5)
    top = max(float(share.max()), uniform if np.isfinite(uniform) else 0.0, 1e-9)
    ax.set_xlim(0, top * 1.3)
    ax.xaxis.set_major_formatter(mticker.PercentFormatter(1.0))
    ax.set_xlabel("share of all attribution mass (%)")
    ax.set_ylabel("planted (feature, lag) pair")
    ax.set_title("Attribution on the planted (feature, lag) pairs")
    return _save(fig, path)
