"""Figures of the preprocessing chapter (02): splits, scaled distributions, one window."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lstmkit.data.splits import SPLITS
from lstmkit.data.windows import Prepared
from lstmkit.report.plots.style import MAX_BOX_ROWS, MAX_LINE_POINTS, SPLIT_COLORS, _save


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
