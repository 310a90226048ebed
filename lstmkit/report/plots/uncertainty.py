"""Figures of the uncertainty chapter (07): fan charts, reliability per horizon step, PIT histograms, interval width
over time beside the error. Every interval figure sets the forecaster's intervals beside the conformalised
seasonal-naive baseline's; values are passed in the units the axis labels name."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from lstmkit.report.plots.style import MAX_LINE_POINTS, _no_data, _save

__all__ = ["fan_chart", "pit_histograms", "reliability", "width_over_time"]

BAND_COLORS = {0.5: 0.55, 0.8: 0.35, 0.95: 0.18}  # alpha of each central band (darker = narrower)


def _band(grid, level: float) -> tuple[int, int] | None:
    """Positions in `grid` of the ends of the central `level` interval, or None when the grid lacks them."""
    grid = [round(float(g), 10) for g in grid]
    lo, hi = round((1 - level) / 2, 10), round((1 + level) / 2, 10)
    return (grid.index(lo), grid.index(hi)) if lo in grid and hi in grid else None


def fan_chart(times: pd.Index, actual: np.ndarray, quantiles: dict[str, np.ndarray], grid, step: int, target: str,
              units: str, levels=(0.5, 0.8, 0.95), path=None) -> plt.Figure:
    """Median and central bands (50/80/95% where the grid holds them) of each entry's `step`-ahead forecasts, one panel
    per entry (the forecaster, then the baseline), with the actuals. actual (n,), quantiles {label: (n, K)}."""
    grid = [round(float(g), 10) for g in grid]
    fig, axes = plt.subplots(len(quantiles), 1, figsize=(11, 2.9 * len(quantiles) + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    median = grid.index(0.5)
    for ax, (label, q) in zip(axes[:, 0], quantiles.items()):
        drawn = []
        for level in sorted(levels, reverse=True):
            ends = _band(grid, level)
            if ends is not None:
                ax.fill_between(times, q[:, ends[0]], q[:, ends[1]], color="tab:blue", alpha=BAND_COLORS.get(level, 0.3),
                                lw=0, label=f"{level:.0%} interval")
                drawn.append(level)
        ax.plot(times, q[:, median], color="tab:blue", lw=1.2, label="median")
        ax.plot(times, actual, color="k", lw=1.0, label="actual")
        inside = {lv: float(np.mean((actual >= q[:, _band(grid, lv)[0]]) & (actual <= q[:, _band(grid, lv)[1]])))
                  for lv in drawn}
        ax.set_title(f"{label}: " + ", ".join(f"{lv:.0%} band holds {v:.0%} of these actuals" for lv, v in inside.items()),
                     fontsize=10)
        ax.set_ylabel(f"{target} ({units})")
        ax.legend(ncol=5, fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("time of the forecast target")
    fig.suptitle(f"Fan chart: {step}-step-ahead forecasts over the start of the test span ({len(times):,} windows)")
    return _save(fig, path, maxticks=None)


def reliability(coverage: dict[str, dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]], path=None) -> plt.Figure:
    """Empirical coverage per horizon step against the nominal level (dashed), with block-bootstrap 95% confidence
    bands; one panel per entry. coverage {label: {level: (coverage (h,), ci low (h,), ci high (h,))}}."""
    n = len(coverage)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows + 0.5), sharey=True, squeeze=False)
    colors = plt.get_cmap("viridis")
    for i, (label, per_level) in enumerate(coverage.items()):
        ax = axes[i // cols, i % cols]
        for j, (level, (cov, lo, hi)) in enumerate(sorted(per_level.items())):
            color = colors(j / max(1, len(per_level) - 1) * 0.8)
            steps = np.arange(1, len(cov) + 1)
            ax.plot(steps, cov, marker="o" if len(cov) <= 24 else None, ms=3, color=color, label=f"{level:.0%}")
            ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
            ax.axhline(level, color=color, ls="--", lw=1)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("horizon step (steps ahead)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i % cols == 0:
            ax.set_ylabel("coverage (share of windows)")
        ax.legend(title="nominal", fontsize=8, title_fontsize=8, loc="lower left")
    for k in range(n, rows * cols):
        axes[k // cols, k % cols].set_visible(False)
    fig.suptitle("Reliability: test coverage per horizon step against the nominal level (dashed); "
                 "bands: block-bootstrap 95% CI")
    return _save(fig, path)


def pit_histograms(pits: dict[str, np.ndarray], bins: int = 10, path=None) -> plt.Figure:
    """Histogram of the probability integral transform of the actuals (all windows and steps) under each entry's
    forecast distribution; calibrated forecasts give a flat histogram at density 1. pits {label: array}."""
    n = len(pits)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows + 0.5), sharey=True, squeeze=False)
    for i, (label, values) in enumerate(pits.items()):
        ax = axes[i // cols, i % cols]
        values = np.asarray(values, float).ravel()
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=bins, range=(0, 1), density=True, color="tab:blue", alpha=0.75, edgecolor="white")
        else:
            _no_data(ax, "no PIT values")
        ax.axhline(1.0, color="k", ls="--", lw=1, label="uniform (calibrated)")
        ax.set_xlim(0, 1)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("PIT value (forecast CDF at the actual)")
        if i % cols == 0:
            ax.set_ylabel("density (1 = uniform)")
        if i == 0:
            ax.legend(fontsize=8, loc="upper right")
    for k in range(n, rows * cols):
        axes[k // cols, k % cols].set_visible(False)
    fig.suptitle("PIT histograms (U shape: intervals too narrow; hump: too wide; slope: biased)")
    return _save(fig, path)


def width_over_time(times: pd.Index, widths: dict[str, np.ndarray], errors: dict[str, np.ndarray], level: float,
                    step: int, units: str, path=None) -> plt.Figure:
    """Top: width of each entry's central `level` interval at horizon step `step` over the test span; bottom: the
    absolute error of the forecasts those intervals are built around, in the colour of the entry whose label begins
    theirs. widths, errors {label: (n,)}, original units."""
    every = max(1, len(times) // MAX_LINE_POINTS)
    t = times[::every]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    palette = plt.get_cmap("tab10")
    colors = {label: palette(i % 10) for i, label in enumerate(widths)}
    # an entry far wider than the baseline's band (an untrained head, say) would flatten the others: the axis stops at
    # the others' widest band when its median exceeds three times the last entry's (the baseline's) widest band, and
    # its legend gives its median width
    limit = 3 * np.nanmax(np.asarray(list(widths.values())[-1], float)) if widths else np.nan
    off = False
    for label, w in widths.items():
        median = float(np.nanmedian(w))
        wide = np.isfinite(limit) and limit > 0 and median > limit
        off |= wide
        top.plot(t, np.asarray(w)[::every], lw=1.0, color=colors[label],
                 label=f"{label} (off scale: median {median:.3g})" if wide else label)
    if off:
        shown = [np.nanmax(w) for w in widths.values() if not float(np.nanmedian(w)) > limit]
        top.set_ylim(0, 1.05 * max(shown + [limit / 3]))
    for i, (label, e) in enumerate(reversed(errors.items())):  # the baseline's first, beneath the model's
        color = next((c for k, c in colors.items() if label.startswith(k)), palette((len(widths) + i) % 10))
        bottom.plot(t, np.abs(np.asarray(e))[::every], lw=0.8, color=color, alpha=0.85, label=label)
    top.set_title(f"Width of the {level:.0%} interval at step {step} over the test span")
    top.set_ylabel(f"interval width ({units})")
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.set_title(f"Absolute {step}-step-ahead error of the forecast at the centre")
    bottom.set_ylabel(f"|actual - forecast| ({units})")
    bottom.set_xlabel("time of the forecast target")
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if every > 1:
        fig.suptitle(f"every {every}th of {len(times):,} windows")
    return _save(fig, path, maxticks=None)
