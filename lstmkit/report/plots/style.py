"""Shared figure style: colours per split and forecaster, the seaborn theme, saving, long-series envelopes."""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
# baselines keep one style each; models (whatever their name) take MODEL_PALETTE's colours in the order they come
FORECASTER_STYLE = {"persistence": dict(color="tab:gray", ls=":"), "seasonal_naive": dict(color="tab:purple", ls="--"),
                    "linear": dict(color="tab:olive", ls="-."), "nlinear": dict(color="tab:cyan", ls="-."),
                    "autoreg": dict(color="tab:brown", ls=":"), "ensemble": dict(color="black", ls="--", lw=1.6)}
MODEL_PALETTE = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:pink", "navy", "darkgoldenrod", "teal",
                 "crimson", "darkviolet")


def forecaster_styles(names) -> dict[str, dict]:
    """Line style of each forecaster: a baseline's (and the ensemble's) own, models a palette colour by order."""
    styles, i = {}, 0
    for name in names:
        if name in FORECASTER_STYLE:
            styles[name] = FORECASTER_STYLE[name]
        else:
            styles[name] = dict(color=MODEL_PALETTE[i % len(MODEL_PALETTE)], lw=1.6)
            i += 1
    return styles

sns.set_theme(style="whitegrid", context="notebook")


def _save(fig: plt.Figure, path, maxticks: int | None = 8) -> plt.Figure:
    """Tidy date axes (at most `maxticks` ticks; None: matplotlib's default counts per frequency, which can place
    ticks on any span), lay out, and also write the figure as PNG when a path is given."""
    for ax in fig.axes:
        if isinstance(ax.xaxis.get_major_formatter(), (mdates.AutoDateFormatter, mdates.ConciseDateFormatter)):
            locator = mdates.AutoDateLocator() if maxticks is None else mdates.AutoDateLocator(maxticks=maxticks)
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


MAX_LINE_POINTS = 50_000  # points of a line or scatter over all rows or windows; longer ones are drawn every k-th
MAX_BOX_ROWS = 200_000    # rows per split behind the box plots of scaled channels


def _no_data(ax: plt.Axes, text: str = "no completed trial with a finite loss") -> None:
    """Say in the middle of an empty panel why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
