"""Causal anomaly scores from forecast residuals: each observation's residuals of the forecasts made 1..k steps
earlier, standardised by the median and MAD of calibration residuals, smoothed over trailing observations (root mean
square), the largest of the k as the score; conformal p-values against calibration scores (static or rolling), a flag
threshold at a chosen false-alarm rate, and Merlion-style alarm aggregation (`min_run`, `suppress`). A score at time
t uses data up to t only."""

from __future__ import annotations

import numpy as np

MAD_TO_SD = 1.4826  # median absolute deviation of a normal sample x this = its standard deviation


# ------------------------------------------------------------------ residuals, scores, p-values


def step_forecasts(forecaster, prepared, rows: np.ndarray, steps: int = 1, batch_size: int = 4096) -> np.ndarray:
    """(len(rows), steps) forecasts, scaled, of the target at each row: column j - 1 is the step-j forecast made from the
    look-back ending at row - j (every forecast was issued before the row it forecasts)."""
    rows = np.asarray(rows, dtype=np.int64)
    lookback = prepared.lookback
    if rows.size and rows.min() < lookback + steps - 1:
        raise ValueError(f"row {rows.min()} has fewer than {lookback + steps - 1} rows before it for a look-back window "
                         f"{steps} step(s) earlier")
    out = np.empty((len(rows), steps))
    if not rows.size:
        return out
    first = int(rows.min()) - steps  # origins first..last (the last row of each look-back window)
    origins = np.arange(first, int(rows.max()))
    offsets = np.arange(-lookback + 1, 1)[None, :]
    predicted = np.empty((len(origins), steps))
    for a in range(0, len(origins), batch_size):
        windows = prepared.scaled[origins[a:a + batch_size, None] + offsets]
        predicted[a:a + batch_size] = forecaster.predict(windows)[:, :steps]
    for j in range(1, steps + 1):
        out[:, j - 1] = predicted[rows - j - first, j - 1]
    return out


def step1_forecasts(forecaster, prepared, rows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(len(rows),) step-1 forecasts, scaled, of the target at each row, made from the look-back ending at row - 1."""
    return step_forecasts(forecaster, prepared, rows, 1, batch_size)[:, 0]


def robust_scale(residuals: np.ndarray) -> tuple[float, float]:
    """Centre (median) and scale (MAD x 1.4826, the standard deviation when the MAD is 0) of residuals."""
    r = np.asarray(residuals, dtype=float)
    centre = float(np.median(r))
    scale = MAD_TO_SD * float(np.median(np.abs(r - centre)))
    if not scale > 0:
        scale = float(np.std(r)) or 1.0
    return centre, scale


def scores_from(residuals: np.ndarray, centre: float, scale: float, smooth: int = 1) -> np.ndarray:
    """(n - smooth + 1,) scores of a contiguous run of residuals: root mean square of the standardised residuals over
    `smooth` trailing observations; score i belongs to residual i + smooth - 1. NaN residuals (filled values, not
    observations) are left out of the mean; a score whose window holds none but NaN is NaN."""
    z2 = ((np.asarray(residuals, dtype=float) - centre) / scale) ** 2
    if smooth <= 1:
        return np.sqrt(z2)
    seen = ~np.isnan(z2)
    c = np.concatenate([[0.0], np.cumsum(np.where(seen, z2, 0.0))])
    n = np.concatenate([[0], np.cumsum(seen)])
    count = n[smooth:] - n[:-smooth]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(np.maximum(c[smooth:] - c[:-smooth], 0.0) / count), np.nan)


def step_scales(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step centres and scales (robust_scale of each column) of residuals (n, steps): two (steps,) arrays."""
    r = np.asarray(residuals, dtype=float).reshape(len(residuals), -1)
    pairs = [robust_scale(r[~np.isnan(r[:, j]), j]) for j in range(r.shape[1])]  # NaN: filled values, left out
    return np.array([c for c, _ in pairs]), np.array([s for _, s in pairs])


def multistep_scores(residuals: np.ndarray, centres: np.ndarray, scales: np.ndarray,
                     smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n - smooth + 1,) of a contiguous run of multi-step residuals (n, steps): the largest over the steps of
    each step's scores_from (standardised by its own centre and scale); also the step (1-based) that gave it."""
    r = np.asarray(residuals, dtype=float).reshape(len(residuals), -1)
    per_step = np.stack([scores_from(r[:, j], centres[j], scales[j], smooth) for j in range(r.shape[1])], axis=1)
    none = np.isnan(per_step).all(axis=1)  # no observed residual in the window (filled values): no score, step 0
    per_step = np.where(np.isnan(per_step), -np.inf, per_step)
    return np.where(none, np.nan, per_step.max(axis=1)), np.where(none, 0, per_step.argmax(axis=1) + 1)


def conformal_pvalues(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values (1 + #{calibration >= s}) / (n + 1) of scores s against n calibration scores."""
    cal = np.sort(np.asarray(calibration, dtype=float))
    at_least = len(cal) - np.searchsorted(cal, np.asarray(scores, dtype=float), side="left")
    return (1.0 + at_least) / (len(cal) + 1.0)


def rolling_pvalues(calibration: np.ndarray, scores: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Online conformal p-values: score t against the n most recent scores before it, drawn from the calibration
    scores (n of them) followed by the scores 0..t-1; (1 + #{those >= s_t}) / (n + 1)."""
    from numpy.lib.stride_tricks import sliding_window_view

    cal, scores = np.asarray(calibration, dtype=float), np.asarray(scores, dtype=float)
    n = len(cal)
    windows = sliding_window_view(np.concatenate([cal, scores]), n)[:len(scores)]  # row t: the n scores before t
    out = np.empty(len(scores))
    for a in range(0, len(scores), chunk):
        out[a:a + chunk] = (1.0 + (windows[a:a + chunk] >= scores[a:a + chunk, None]).sum(axis=1)) / (n + 1.0)
    return out


def aggregate_alarms(flags: np.ndarray, min_run: int = 1, suppress: int = 0) -> np.ndarray:
    """Alarms from flags (Merlion-style post-rule): an observation alarms when it ends a run of at least `min_run`
    consecutive flags and no alarm was raised in the `suppress` observations before it."""
    flags = np.asarray(flags, dtype=bool)
    alarms = np.zeros(len(flags), dtype=bool)
    run, last = 0, -(suppress + 1)
    for i, f in enumerate(flags):
        run = run + 1 if f else 0
        if run >= min_run and i - last > suppress:
            alarms[i] = True
            last = i
    return alarms


def flag_threshold(calibration: np.ndarray, rate: float) -> float:
    """The score above which an observation is flagged at `rate`: p <= rate exactly when fewer than
    floor(rate (n + 1)) calibration scores reach the score, i.e. when it exceeds the floor(rate (n + 1))-th largest
    (+inf when rate (n + 1) < 1: with so few calibration scores nothing can be flagged)."""
    cal = np.sort(np.asarray(calibration, dtype=float))[::-1]
    k = int(np.floor(rate * (len(cal) + 1)))
    return float(cal[k - 1]) if k >= 1 else float("inf")
