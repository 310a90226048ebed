"""Figures of the tuning chapter (03): trials, hyperparameter effects, folds, importance, Ray lineage and rungs."""

from __future__ import annotations

import re

import matplotlib as mpl
import matplotlib.collections as mcollections
import matplotlib.colors as mcolors
import matplotlib.lines as mlines
import matplotlib.patches as mpatches
import matplotlib.patheffects as mpatheffects
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import matplotlib.transforms as mtransforms
import numpy as np
import pandas as pd

from lstmkit.report.plots.style import _no_data, _save

# ---------------------------------------------------------------- tuning chapter

STATUS_STYLE = {"COMPLETED": dict(color="tab:blue", marker="o"), "PRUNED": dict(color="tab:orange", marker="v"),
                "FAILED": dict(color="tab:red", marker="X"), "INVALID": dict(color="tab:red", marker="X")}
PARAM_LABELS = {"layers": "stacked recurrent layers (count)", "units": "units per layer (cells / hidden size)",
                "dropout": "dropout (fraction of units)", "learning_rate": "learning rate (per update)",
                "batch_size": "batch size (windows)", "optimizer": "optimizer (name)",
                "normalization": "normalization (layer type)", "lookback": "look-back (time steps)",
                "architecture": "architecture (network)"}
# an architecture's own settings (`<arch>.<option>`, the fields of its model.<arch> section): what and in which unit
OPTION_LABELS = {
    "cnn_lstm.filters": "Conv1D filters (channels)", "cnn_lstm.kernel_size": "Conv1D kernel (time steps)",
    "cnn_lstm.conv_layers": "convolution layers (count)", "attention_lstm.score": "attention score (function)",
    "tcn.filters": "filters per block (channels)", "tcn.kernel_size": "dilated kernel (time steps)",
    "nbeats.stacks": "stacks (type)", "nbeats.blocks": "blocks per stack (count)",
    "nbeats.fc_layers": "dense layers per block (count)", "nbeats.width": "dense layer width (units)",
    "nbeats.degree": "trend polynomial (degree)", "nbeats.harmonics": "Fourier harmonics (count)",
    "patchtst.patch_len": "patch length (time steps)", "patchtst.stride": "patch stride (time steps)",
    "patchtst.d_model": "model width (units)", "patchtst.heads": "attention heads (count)",
    "patchtst.layers": "encoder layers (count)", "patchtst.d_ff": "feed-forward width (units)",
    "tft.heads": "attention heads (count)",
}
LOSS_LABEL = "validation MSE (scaled, log scale)"


def _owner(name: str) -> str | None:
    """The architecture of an `<arch>.<option>` hyperparameter (active only in its trials); None for a common one."""
    return name.partition(".")[0] if "." in name else None


def _param_label(param) -> str:
    """Axis label of a tuned hyperparameter with its unit (and the log scale when its range has one); an
    architecture's own setting is prefixed with the architecture, e.g. `tcn: dilated kernel (time steps)`."""
    arch, _, option = param.name.partition(".")
    label = PARAM_LABELS.get(param.name) or (f"{arch}: {OPTION_LABELS.get(param.name, option.replace('_', ' '))}"
                                             if option else param.name)
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
    """Objective against each tuned hyperparameter, one panel each, over the completed trials (best one starred).

    An architecture's own setting (`<arch>.<option>`) is drawn only for the trials of that architecture (it is NaN,
    inactive, in the others); its panel says so, and stars the best trial only when that trial is one of them.
    """
    params, done = _tuned(table, space), _completed(table)
    ncols = min(4, len(params))
    nrows = -(-len(params) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.2 * nrows + 0.8), squeeze=False)
    for ax in axes.flat[len(params):]:
        fig.delaxes(ax)
    all_loss = done["val_loss"].to_numpy()
    best_trial = done.index[int(np.argmin(all_loss))] if len(done) else None
    rng = np.random.default_rng(0)
    legend: dict = {}
    for k, (ax, p) in enumerate(zip(axes.flat, params)):
        mine = done[done[p.name].notna()] if _owner(p.name) else done  # active trials only
        loss = mine["val_loss"].to_numpy()
        best = int(np.flatnonzero(mine.index == best_trial)[0]) if best_trial in mine.index else None
        if p.is_range:
            values = pd.to_numeric(mine[p.name], errors="coerce").to_numpy(dtype=float)
            ax.scatter(values, loss, s=22, alpha=0.7, color="tab:blue", label="completed trial")
            if p.log and len(mine):  # (a log axis without data cannot place its ticks)
                ax.set_xscale("log")
            elif p.type is int:
                ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        else:  # strip plot: choices at 0..m-1 in declared order, points jittered, median as a bar
            labels, values = _categories(mine[p.name], p)
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
                       label=f"best trial (#{best_trial}, {loss[best]:.3g})")
        if len(mine):
            ax.set_yscale("log")
        elif len(done) and _owner(p.name):
            _no_data(ax, f"no completed {_owner(p.name)} trial")
            ax.set_yticks([])
        else:
            _no_data(ax)
        ax.set_title(p.name + (f"\n({_owner(p.name)} trials only)" if _owner(p.name) and space.searches_architecture else ""))
        ax.set_xlabel(_param_label(p))
        ax.set_ylabel(LOSS_LABEL if k % ncols == 0 else "")
        legend.update({label: h for h, label in zip(*ax.get_legend_handles_labels()) if label not in legend})
    if legend:
        axes.flat[0].legend(legend.values(), legend.keys(), fontsize=8, loc="best")
    fig.suptitle("Effect of each hyperparameter on the objective")
    return _save(fig, path)


def parallel_coordinates(table: pd.DataFrame, space, path=None) -> plt.Figure:
    """Completed trials as polylines across one axis per tuned hyperparameter and a final val_loss axis.

    An architecture's own setting has a value only in that architecture's trials: the other trials' lines pass its
    axis by (they join their neighbouring active axes) instead of marking a value they never had.
    """
    params, done = _tuned(table, space), _completed(table)
    loss = done["val_loss"].to_numpy()
    columns = [_parallel_axis(done[p.name], p) for p in params]
    lo, hi = (loss.min(), loss.max()) if len(loss) else (1.0, 1.0)
    columns.append(_range_axis(loss, lo, hi, log=True, integer=False) if len(loss) else (loss, []))
    names = [p.name + ("\n(log)" if p.log else "")
             + (f"\n({_owner(p.name)} only)" if _owner(p.name) and space.searches_architecture else "")
             for p in params] + ["val_loss\n(log)"]
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
        active = np.isfinite(positions[i])
        ax.plot(xs[active], positions[i][active], color=cmap(norm(loss[i])), lw=3.2 if best else 1.1, alpha=1.0 if best else 0.75,
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


# ---------------------------------------------------------------- Ray searches (pbt, asha): run.lineage_file

EPOCH_LABEL = "epoch (training epochs of the weights, inherited ones included)"
TRIAL_LABEL = "trial (Ray trial number)"


def _lineage_rows(lineage: pd.DataFrame, required: tuple[str, ...], figure: str) -> pd.DataFrame:
    """The lineage table (tuning/lineage.csv) checked for `required` columns, typed, one row per (trial, epoch).

    Rows without a trial or epoch number are dropped; a repeated (trial, epoch) keeps its last row (a resumed
    search may report an epoch twice); `copied_from` is a float donor number, NaN where the trial did not copy.
    """
    if not isinstance(lineage, pd.DataFrame):
        raise ValueError(f"{figure} needs the lineage table (a DataFrame read from tuning/lineage.csv), "
                         f"not {type(lineage).__name__}")
    for column in required:
        if column not in lineage.columns:
            raise ValueError(f"{figure}: the lineage table (tuning/lineage.csv) has no column '{column}' (it needs "
                             f"{', '.join(required)}; found: {', '.join(map(str, lineage.columns)) or 'none'})")
    rows = lineage.reset_index(drop=True).copy()
    for column in ("trial", "epoch", "val_loss", "learning_rate", "dropout", "batch_size", "copied_from"):
        if column in rows:
            rows[column] = pd.to_numeric(rows[column], errors="coerce")
    rows = rows.dropna(subset=["trial", "epoch"])
    rows["trial"], rows["epoch"] = rows["trial"].astype(int), rows["epoch"].astype(int)
    return rows.drop_duplicates(["trial", "epoch"], keep="last").sort_values(["trial", "epoch"], kind="stable")


def _best_trial(rows: pd.DataFrame, best_trial: int | None) -> tuple[int | None, int | None]:
    """The winning trial (given, else the lowest finite validation loss) and the epoch of its lowest loss (its
    weights' epoch; its last epoch when it has no finite loss); (None, None) for an empty table."""
    if best_trial is not None:
        mine = rows[rows["trial"] == int(best_trial)]
        if mine.empty:
            raise ValueError(f"best trial {best_trial} has no row in the lineage table "
                             f"(trials there: {', '.join(map(str, sorted(rows['trial'].unique()))) or 'none'})")
    else:
        finite = rows[np.isfinite(rows["val_loss"])] if "val_loss" in rows else rows.iloc[:0]
        if finite.empty:
            return None, None
        mine = rows[rows["trial"] == int(finite.loc[finite["val_loss"].idxmin(), "trial"])]
    loss = mine["val_loss"] if "val_loss" in mine else pd.Series(np.nan, index=mine.index)
    epoch = mine.loc[loss.idxmin(), "epoch"] if loss.notna().any() else mine["epoch"].max()
    return int(mine["trial"].iloc[0]), int(epoch)


def _ancestry(rows: pd.DataFrame, trial: int, epoch: int) -> list[tuple[int, int, int, float]]:
    """The trials whose weights the weights of `trial` after `epoch` descend from, oldest first: one
    (trial, first epoch, last epoch, donor) per stretch; a stretch that began with a copy has its donor trial
    number (its first epoch trained on the donor's weights after epoch first - 1), the oldest has NaN."""
    chain, hi = [], epoch
    while True:
        mine = rows[(rows["trial"] == trial) & (rows["epoch"] <= hi)]
        if mine.empty:
            break
        copies = mine[mine["copied_from"].notna()]
        if copies.empty:
            chain.append((trial, int(mine["epoch"].min()), hi, np.nan))
            break
        start = copies.iloc[-1]
        chain.append((trial, int(start["epoch"]), hi, float(start["copied_from"])))
        trial, hi = int(start["copied_from"]), int(start["epoch"]) - 1  # hi falls each step: the loop ends
    return chain[::-1]


def _log_norm(values: np.ndarray) -> mcolors.Normalize:
    """A log colour scale over the positive finite values (a little room either side of a single value)."""
    ok = values[np.isfinite(values) & (values > 0)]
    if not len(ok):
        return mcolors.LogNorm(1e-4, 1e-2)
    lo, hi = float(ok.min()), float(ok.max())
    return mcolors.LogNorm(lo, hi) if hi > lo * 1.0001 else mcolors.LogNorm(lo / 1.5, hi * 1.5)


def lineage(lineage: pd.DataFrame, best_trial: int | None = None, path=None) -> plt.Figure:
    """Population based training as a family tree: one track per trial over epochs, coloured by learning rate.

    `lineage` is the table of tuning/lineage.csv (one row per trial and epoch). Each epoch is a segment of its
    trial's track from epoch - 1 to epoch; an epoch trained right after a copy is drawn instead as an arrow from
    the donor's track at epoch - 1 (the weights taken) to the trial's at epoch. The winner (`best_trial`, else
    the trial with the lowest validation loss) is starred at its best epoch and its ancestry, the stretches of
    tracks and copies its weights went through, is underlaid in bold.
    """
    rows = _lineage_rows(lineage, ("trial", "epoch", "val_loss", "learning_rate", "copied_from"), "lineage")
    donors = rows["copied_from"].dropna().astype(int)
    trials_ = np.union1d(rows["trial"].unique(), donors.unique())  # a donor without rows of its own still has a track
    fig, ax = plt.subplots(figsize=(11, max(3.6, 0.32 * len(trials_) + 2.4)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.6")
    norm = _log_norm(rows["learning_rate"].to_numpy(dtype=float))
    lr_colour = lambda lr: cmap(norm(lr)) if np.isfinite(lr) and lr > 0 else "0.6"
    best, best_epoch = _best_trial(rows, best_trial)
    chain = _ancestry(rows, best, best_epoch) if best is not None else []
    bold_copies = {(t, first) for t, first, _, donor in chain if np.isfinite(donor)}
    fresh = rows[rows["copied_from"].isna()]
    segments = [[(e - 1, t), (e, t)] for t, e in zip(fresh["trial"], fresh["epoch"])]
    lr = fresh["learning_rate"].to_numpy(dtype=float)
    tracks = mcollections.LineCollection(segments, cmap=cmap, norm=norm, linewidths=3.0, zorder=3, gid="tracks",
                                         capstyle="butt")
    tracks.set_array(np.ma.masked_invalid(np.where(lr > 0, lr, np.nan)))
    ax.add_collection(tracks)
    for t, e, donor, rate in rows.loc[rows["copied_from"].notna(), ["trial", "epoch", "copied_from", "learning_rate"]].itertuples(index=False):
        bold = (t, e) in bold_copies
        ax.add_patch(mpatches.FancyArrowPatch((e - 1, donor), (e, t), arrowstyle="-|>", mutation_scale=12,
                                              color=lr_colour(rate), lw=2.6 if bold else 1.3, zorder=4 if bold else 3,
                                              shrinkA=0, shrinkB=0, gid="copy",  # a dark rim: pale colours show too
                                              path_effects=[mpatheffects.Stroke(linewidth=(2.6 if bold else 1.3) + 1.6,
                                                                                foreground="0.2"), mpatheffects.Normal()]))
    handles = [mlines.Line2D([], [], color=cmap(0.5), lw=3, label="epoch trained (colour: learning rate)"),
               mlines.Line2D([], [], color="0.3", lw=1.3, marker=">", markevery=[1],
                             label=f"copy: took the donor's weights, new hyperparameters ({len(rows) - len(fresh)})")]
    if chain:
        xs, ys = [], []
        for t, first, last, donor in chain:  # a copied stretch starts where the arrow lands, the oldest one at its start
            xs += [first - (0 if np.isfinite(donor) else 1), last]
            ys += [t, t]
        names = " ← ".join(str(t) for t, *_ in chain[::-1])
        ax.plot(xs, ys, color="tab:red", lw=9, alpha=0.3, zorder=2, solid_capstyle="round", gid="ancestry",
                label=f"winner's ancestry (trial {names})")
        loss = rows.loc[(rows["trial"] == best) & (rows["epoch"] == best_epoch), "val_loss"].iloc[0]
        ax.scatter([best_epoch], [best], marker="*", s=260, color="red", edgecolor="k", zorder=5, gid="winner",
                   label=f"winner: trial {best}, epoch {best_epoch}, validation MSE {loss:.3g}")
        handles = [*handles, *ax.get_legend_handles_labels()[0]]
    if rows.empty:
        _no_data(ax, "no epoch in the lineage table")
    else:
        ax.set_xlim(min(0, rows["epoch"].min() - 1) - 0.3, rows["epoch"].max() + 0.3)
        ax.set_ylim(trials_.min() - 0.7, trials_.max() + 0.7)
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        if len(trials_) <= 30:
            ax.set_yticks(trials_)
        ax.invert_yaxis()  # trial 0 at the top
    ax.set_title("Population based training: who copied whom, and the learning rate of every epoch")
    ax.set_xlabel(EPOCH_LABEL)
    ax.set_ylabel(TRIAL_LABEL)
    fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="learning rate")
    below = ax.transAxes + mtransforms.ScaledTranslation(0, -0.5, fig.dpi_scale_trans)  # under the x label
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below, ncol=2,
              frameon=False, fontsize=9)
    return _save(fig, path)


def schedule(lineage: pd.DataFrame, trial: int | None = None, path=None) -> plt.Figure:
    """The hyperparameters in force at every epoch of a trial's weights, along its ancestry (donors' epochs before
    each copy), one panel each for learning rate, dropout and batch size; `trial` defaults to the best one."""
    rows = _lineage_rows(lineage, ("trial", "epoch", "val_loss", "learning_rate", "dropout", "batch_size",
                                   "copied_from"), "schedule")
    best, best_epoch = _best_trial(rows, trial)
    if best is None and not rows.empty:  # no finite loss anywhere: the trial with most epochs
        best, best_epoch = _best_trial(rows, int(rows["trial"].value_counts().idxmax()))
    chain = _ancestry(rows, best, best_epoch) if best is not None else []
    path_rows = pd.concat([rows[(rows["trial"] == t) & rows["epoch"].between(first, last)] for t, first, last, _ in chain]
                          or [rows.iloc[:0]])
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.4), sharex=True)
    panels = (("learning_rate", "learning rate\n(per update)", "tab:blue"),
              ("dropout", "dropout\n(fraction of units)", "tab:green"),
              ("batch_size", "batch size\n(windows)", "tab:purple"))
    edges = np.append(path_rows["epoch"].to_numpy() - 1, path_rows["epoch"].to_numpy()[-1:])
    for ax, (column, label, colour) in zip(axes, panels):
        values = path_rows[column].to_numpy(dtype=float)
        if len(values):
            ax.stairs(values, edges, color=colour, lw=2.2, baseline=None)
            for t, first, _, donor in chain:
                if np.isfinite(donor):
                    ax.axvline(first - 1, color="0.4", ls=":", lw=1.2, zorder=1,
                               label=f"copied trial {int(donor)} → {t}" if ax is axes[0] else None)
        else:
            _no_data(ax, "no epoch of this trial in the lineage table")
        positive = values[np.isfinite(values) & (values > 0)]
        if column == "learning_rate" and len(positive) and positive.max() > 3 * positive.min():  # log: a wide range
            ax.set_yscale("log")
            ax.set_ylabel("learning rate\n(per update, log scale)")
        elif column == "batch_size":  # the sizes used (often powers of two), else whole numbers
            used = np.unique(values[np.isfinite(values)])
            ax.yaxis.set_major_locator(mticker.FixedLocator(used) if 0 < len(used) <= 6
                                       else mticker.MaxNLocator(integer=True))
        if not ax.get_ylabel():
            ax.set_ylabel(label)
    for t, first, _, _ in chain:  # which trial trained each stretch, at its start in the top panel
        axes[0].annotate(f"trial {t}", xy=(first - 1, 1), xycoords=("data", "axes fraction"),
                         xytext=(3, -12), textcoords="offset points", fontsize=8, color="0.3")
    if len(path_rows):
        axes[-1].xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        axes[-1].set_xlim(edges[0], edges[-1])
    axes[0].set_title(f"Hyperparameter schedule of trial {best}'s weights (epochs 1-{best_epoch}, along its ancestry)"
                      if best is not None else "Hyperparameter schedule (empty lineage table)")
    axes[-1].set_xlabel(EPOCH_LABEL)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="best")
    return _save(fig, path)


def rungs(lineage: pd.DataFrame, best_trial: int | None = None, path=None) -> plt.Figure:
    """ASHA (or PBT) trials' validation loss by epoch, one line per trial: a trial stopped early ends with a cross
    before the last epoch; the best trial (`best_trial`, else the lowest validation loss) is drawn bold, in red."""
    rows = _lineage_rows(lineage, ("trial", "epoch", "val_loss"), "rungs")
    rows = rows.assign(val_loss=rows["val_loss"].where(rows["val_loss"] > 0))  # nothing at or below 0 on a log axis
    best, best_epoch = _best_trial(rows, best_trial)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    last_epoch = rows["epoch"].max() if len(rows) else 0
    stops = []
    for t, mine in rows.groupby("trial", sort=True):
        is_best = t == best
        ax.plot(mine["epoch"], mine["val_loss"], color="tab:red" if is_best else "tab:blue", lw=2.6 if is_best else 0.9,
                alpha=1.0 if is_best else 0.55, marker="." if len(mine) < 40 else None, zorder=4 if is_best else 2,
                gid=f"trial {t}", label=None)
        if mine["epoch"].max() < last_epoch and mine["val_loss"].notna().any():
            end = mine[mine["val_loss"].notna()].iloc[-1]
            stops.append((end["epoch"], end["val_loss"]))
    handles = []
    if len(rows):
        handles.append(mlines.Line2D([], [], color="tab:blue", lw=0.9, alpha=0.55,
                                     label=f"trial ({rows['trial'].nunique()})"))
    if stops:
        xs, ys = zip(*stops)
        ax.scatter(xs, ys, marker="x", s=40, color="k", zorder=5, gid="stopped",
                   label=f"stopped early ({len(stops)})")
        for epoch in sorted(set(xs)):  # the rungs: epochs after which the scheduler stopped some trial
            ax.axvline(epoch, color="0.75", ls=":", lw=1, zorder=1)
        handles.append(ax.collections[-1])
        handles.append(mlines.Line2D([], [], color="0.75", ls=":", label="rung (a trial stopped there)"))
    if best is not None:
        loss = rows.loc[(rows["trial"] == best) & (rows["epoch"] == best_epoch), "val_loss"].iloc[0]
        best_line = next(line for line in ax.lines if line.get_gid() == f"trial {best}")
        best_line.set_label(f"best trial ({best}: validation MSE {loss:.3g} at epoch {best_epoch})")
        handles.append(best_line)
    loss = rows["val_loss"].to_numpy(dtype=float)
    finite = loss[np.isfinite(loss)]
    log = len(finite) > 1 and finite.max() > 3 * finite.min()  # a log axis when losses span a factor above 3
    if log:
        ax.set_yscale("log")
    if not len(finite):
        _no_data(ax, "no finite validation loss in the lineage table")
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.set_title("Validation loss of every trial by epoch (trials stopped early end before the last epoch)")
    ax.set_xlabel("epoch (epochs trained so far)")
    ax.set_ylabel(LOSS_LABEL if log else "validation MSE (scaled)")
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    return _save(fig, path)
