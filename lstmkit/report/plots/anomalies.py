"""Figures of the anomalies chapter (08): scores and flags over time, p-value and score distributions, IG of alarms."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lstmkit.report.plots.explainability import window_heatmaps
from lstmkit.report.plots.style import _save

__all__ = ["anomaly_series", "pvalue_distribution", "alarm_heatmaps"]


def _shade(ax: plt.Axes, index: pd.DatetimeIndex, labels: np.ndarray, label: str | None = None) -> None:
    """Shade the label windows (runs of True) of a time axis."""
    m = np.concatenate([[False], np.asarray(labels, dtype=bool), [False]])
    d = np.diff(m.astype(int))
    half = (index[1:] - index[:-1]).median() / 2 if len(index) > 1 else pd.Timedelta(0)  # a one-step window shows
    for i, (a, b) in enumerate(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1)):
        ax.axvspan(index[a] - half, index[b] + half, color="gold", alpha=0.35, lw=0, label=label if i == 0 else None)


def anomaly_series(frame: pd.DataFrame, threshold: float, units: str = "a.u.", title: str = "", path=None) -> plt.Figure:
    """Two panels over the scored span: actual values and step-1 forecasts with the alarms, and the score with the
    flag threshold; label windows shaded in both. `frame`: the stage's scores frame (timestamp index)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=[3, 2])
    idx = frame.index
    labels = frame["label"].to_numpy() if "label" in frame else np.zeros(len(frame), bool)
    for ax in (top, bottom):
        _shade(ax, idx, labels, "label window" if labels.any() else None)
    top.plot(idx, frame["value"], color="black", lw=0.8, label="actual")
    top.plot(idx, frame["forecast"], color="tab:blue", lw=0.8, alpha=0.8, label="step-1 forecast")
    alarm = frame["alarm"].to_numpy()
    top.scatter(idx[alarm], frame["value"][alarm], color="tab:red", s=18, zorder=3, label="alarm")
    top.set_ylabel(f"value ({units})")
    top.set_title(title or "Scored span: actuals, step-1 forecasts, alarms (red) and label windows (shaded)")
    top.legend(loc="upper left", fontsize=8, ncol=4)
    bottom.plot(idx, frame["score"], color="tab:purple", lw=0.8, label="score")
    if np.isfinite(threshold):
        bottom.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"flag threshold ({threshold:.2f})")
    flag = frame["flag"].to_numpy()
    bottom.scatter(idx[flag], frame["score"][flag], color="tab:red", s=10, zorder=3, label="flag")
    if frame["score"].max() > 20 * max(np.nanmedian(frame["score"]), 1e-9):
        bottom.set_yscale("log")
    bottom.set_ylabel("score (standardised\nresidual, RMS)" + (", log" if bottom.get_yscale() == "log" else ""))
    bottom.set_xlabel("time")
    bottom.legend(loc="upper left", fontsize=8, ncol=3)
    return _save(fig, path)


def pvalue_distribution(frame: pd.DataFrame, calibration: np.ndarray, rate: float, path=None) -> plt.Figure:
    """Left: histogram of the conformal p-values of unlabelled (and labelled) observations against the uniform density
    that exchangeable normal data give; right: the score distributions of calibration and scored observations."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    labels = frame["label"].to_numpy() if "label" in frame else np.zeros(len(frame), bool)
    bins = np.linspace(0, 1, 21)
    left.hist(frame["p_value"][~labels], bins=bins, density=True, alpha=0.6, color="tab:blue",
              label="unlabelled observations")
    if labels.any():
        left.hist(frame["p_value"][labels], bins=bins, density=True, alpha=0.6, color="tab:red",
                  label="observations in label windows")
    left.axhline(1.0, color="black", ls="--", lw=1, label="uniform (normal data)")
    left.axvline(rate, color="tab:red", ls=":", lw=1, label=f"false-alarm rate {rate:g}")
    left.set_xlabel("conformal p-value")
    left.set_ylabel("density")
    left.set_title("p-values of the scored observations")
    left.legend(fontsize=8)
    scores = frame["score"].to_numpy()
    top = max(np.max(scores), np.max(calibration))
    edges = np.linspace(0, top, 41)
    right.hist(calibration, bins=edges, density=True, alpha=0.5, color="tab:gray", label="calibration")
    right.hist(scores[~labels], bins=edges, density=True, alpha=0.5, color="tab:blue", label="scored, unlabelled")
    if labels.any():
        right.hist(scores[labels], bins=edges, density=True, alpha=0.5, color="tab:red", label="scored, in label windows")
    right.set_yscale("log")
    right.set_xlabel("score (standardised residual, RMS)")
    right.set_ylabel("density (log scale)")
    right.set_title("Scores: calibration against scored observations")
    right.legend(fontsize=8)
    return _save(fig, path)


def alarm_heatmaps(values: np.ndarray, features: list[str], labels: list[str], path=None) -> plt.Figure:
    """Signed IG attributions (lag x channel) of the step-1 forecasts broken by up to six alarms, one panel each."""
    fig = window_heatmaps(values, features, labels, 1)
    fig.suptitle("Integrated Gradients of the step-1 forecasts the first alarms broke\n(red = pushed the forecast "
                 "up, blue = down; panel title: the alarmed observation)", fontsize=10)
    return _save(fig, path)
