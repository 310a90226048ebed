"""Figures of the training chapter (04): learning curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from lstmkit.plots.style import (
    _save,
)


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
