"""Figures of the explainability chapter (06): attributions, their agreement and the ground truth."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns

from lstmkit.report.plots.style import _save


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


METHOD_LABELS = {"attention": "attention weight", "variable selection": "variable-selection weight",
                 "ig": "Integrated Gradients"}
METHOD_COLORS = {"attention": "tab:purple", "variable selection": "tab:purple", "ig": "tab:blue"}


def _agreement_title(agreement, level: str) -> str:
    """`Spearman 0.62 over 24 lags, top-5 overlap 60%` (or that there is nothing to rank) for a RankAgreement."""
    if agreement is None:
        return f"Ranks of the {level}s"
    if not np.isfinite(agreement.spearman):
        return f"Ranks of the {level}s (one profile is flat: no rank correlation)"
    text = f"Spearman {agreement.spearman:.2f} over {agreement.entries} {level}s"
    return text + (f", top-{agreement.top_k} overlap {agreement.overlap:.0%}" if agreement.top_k < agreement.entries
                   else "")


def attention_profiles(profiles: pd.DataFrame, agreement=None, true_lags: dict | None = None, unit: str = "steps",
                       path=None) -> plt.Figure:
    """The attention over the look-back steps beside IG's attribution by lag (each as a share of its total), and the
    two rankings of the lags against each other.

    `profiles`: index lag, columns `attention` and `ig` (shares summing to 1); `agreement`: their
    `lstmkit.explain.attention.RankAgreement`; `true_lags`: {input: planted lag} marked with dashed lines.
    """
    if profiles.empty or profiles.shape[1] != 2:
        raise ValueError("attention_profiles needs two profiles (columns) over at least one lag")
    data = profiles.sort_index().astype(float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [2.2, 1]})
    for column in data.columns:
        left.plot(data.index, data[column] * 100, marker=".", color=METHOD_COLORS.get(column),
                  label=METHOD_LABELS.get(column, str(column)))
    for i, (feature, lag) in enumerate((true_lags or {}).items()):
        left.axvline(lag, color="0.3", ls="--", lw=1, label="planted lag" if i == 0 else None)
        left.annotate(str(feature), (lag, 0.98), xycoords=("data", "axes fraction"), ha="left", va="top",
                      xytext=(3, 0), textcoords="offset points", fontsize=8, color="0.3")

    def dominated(column: pd.Series) -> bool:  # one lag far above the rest would flatten every other lag
        positive = column[column > 0]
        return len(positive) > 1 and positive.max() > 10 * positive.median()

    log = any(dominated(data[c]) for c in data.columns)
    if log:
        left.set_yscale("log")
    left.set_xlabel(f"lag ({unit} before the explained target)")
    left.set_ylabel("share of the total (%" + (", log scale)" if log else ")"))
    left.set_title("Weight by lag, mean over the explained windows", fontsize=10)
    left.legend(fontsize=8, loc="best")
    first, second = data.columns
    ranks = data.rank(ascending=False, method="average")
    n = len(data)
    right.plot([1, n], [1, n], color="k", lw=0.8)
    right.scatter(ranks[first], ranks[second], s=18, color="tab:gray")
    for feature, lag in (true_lags or {}).items():
        if lag in ranks.index:
            x, y = ranks.loc[lag, first], ranks.loc[lag, second]
            right.scatter([x], [y], s=60, facecolors="none", edgecolors="tab:red", zorder=5)
            right.annotate(f"{feature} @ lag {lag}", (x, y), fontsize=8, color="tab:red", textcoords="offset points",
                           xytext=(-5 if x <= n / 2 else 5, -8 if y > n / 2 else 5),  # towards the middle: the
                           ha="right" if x <= n / 2 else "left")                      # axes are reversed
    right.set_xlim(n + 0.5, 0.5)  # rank 1 (most weight) at the right and the top
    right.set_ylim(n + 0.5, 0.5)
    right.set_xlabel(f"rank by {METHOD_LABELS.get(first, first)} (1 = most)")
    right.set_ylabel(f"rank by {METHOD_LABELS.get(second, second)} (1 = most)")
    right.set_title(_agreement_title(agreement, "lag") + "\n(line: same rank by both)", fontsize=10)
    fig.suptitle("Temporal attention beside Integrated Gradients")
    return _save(fig, path)


def variable_selection(shares: pd.DataFrame, agreement=None, roles: dict[str, str] | None = None,
                       path=None) -> plt.Figure:
    """The variable-selection weight of each input channel beside IG's share of it (grouped bars, % of each total).

    `shares`: index channel, columns `variable selection` and `ig`; `agreement`: their RankAgreement; `roles`:
    {channel: driver | distractor | target | other} added to the channel labels (synthetic data).
    """
    if shares.empty:
        raise ValueError("variable_selection needs at least one channel")
    data = shares.astype(float)
    n_rows, n_methods = data.shape
    fig, ax = plt.subplots(figsize=(9.5, max(3.0, 0.55 * n_rows * n_methods / 2 + 1.8)))
    height = 0.8 / n_methods
    centres = np.arange(n_rows)
    for j, column in enumerate(data.columns):
        bars = ax.barh(centres - 0.4 + height * (j + 0.5), data[column].to_numpy() * 100, height=height,
                       color=METHOD_COLORS.get(column), label=METHOD_LABELS.get(column, str(column)))
        ax.bar_label(bars, fmt="%.0f%%", padding=2, fontsize=8)
    labels = [f"{c} ({roles[c]})" if roles and roles.get(c, c) != c else str(c) for c in data.index]
    ax.set_yticks(centres, labels)
    ax.set_ylim(n_rows - 0.5, -0.5)  # first channel at the top
    ax.set_xlim(0, max(float(data.to_numpy().max()) * 100 * 1.2, 1.0))
    ax.set_xlabel("share of the total (%)")
    ax.set_ylabel("input channel")
    ax.set_title("Variable selection beside Integrated Gradients\n" + _agreement_title(agreement, "channel"), fontsize=10)
    ax.legend(title="method", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)
