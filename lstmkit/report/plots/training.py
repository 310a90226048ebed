"""Figures of the training chapter (04): learning curves of the selected model and of every model."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from lstmkit.report.plots.style import _save, forecaster_styles


def learning_curves(history: pd.DataFrame, name: str | None = None, path=None) -> plt.Figure:
    """Training and validation loss per epoch, and the learning rate (of the model `name`, when given)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    axes[0].plot(history.index, history["loss"], label="training")
    axes[0].plot(history.index, history["val_loss"], label="validation")
    best = history["val_loss"].idxmin()
    axes[0].axvline(best, color="k", ls="--", lw=1, label=f"best epoch ({best}, weights restored)")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("MSE (scaled, log scale)")
    axes[0].set_title("Learning curves" + (f" of {name}" if name else ""))
    axes[0].legend()
    if "learning_rate" in history:
        axes[1].plot(history.index, history["learning_rate"], color="tab:green")
        axes[1].set_yscale("log")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("learning rate (log scale)")
    axes[1].set_title("Learning rate (halved on validation plateaus)")
    return _save(fig, path)


def learning_curves_grid(histories: dict[tuple[str, int], pd.DataFrame], path=None) -> plt.Figure:
    """Small multiples: one panel per model (architecture), training (dashed) and validation (solid) loss per epoch
    of each of its seeds, on a shared log scale. `histories`: {(model, seed): per-epoch history}."""
    names = list(dict.fromkeys(name for name, _ in histories))
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.4 * cols, 8), 3.2 * rows + 0.4), sharey=True, squeeze=False)
    styles = forecaster_styles(names)
    markers = "osD^vP*X"
    for ax, name in zip(axes.flat, names):
        runs = [(seed, h) for (model, seed), h in histories.items() if model == name and h is not None]
        for i, (seed, history) in enumerate(runs):
            few = len(history) <= 30
            color, marker = styles[name]["color"], markers[i % len(markers)] if few else None
            ax.plot(history.index, history["val_loss"], color=color, lw=1.4, marker=marker, ms=4,
                    label=f"seed {seed}")
            ax.plot(history.index, history["loss"], color=color, lw=0.9, ls="--", marker=marker, ms=3, alpha=0.5)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(mticker.FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_formatter(mticker.FormatStrFormatter("%.3g"))
        longest = max((len(h) for _, h in runs), default=1)
        if longest <= 15:
            ax.set_xticks(range(1, longest + 1))
        else:
            ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        ax.set_xlim(0.5, longest + 0.5)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE (scaled, log scale)")
        ax.legend(fontsize=7, title="validation (solid)", title_fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Learning curves of every model and seed\n(solid: validation loss, dashed: training loss)")
    return _save(fig, path)
