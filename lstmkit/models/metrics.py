"""Forecast accuracy metrics: MSE, RMSE, MAE, MAPE, sMAPE and MASE, overall and per horizon step, in scaled and
original units."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.data.windows import Prepared

METRICS = ("mse", "rmse", "mae", "mape", "smape", "mase")


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 2|y - ŷ| / (|y| + |ŷ|), zero where both are zero."""
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2 * np.abs(y - yhat), den, out=np.zeros_like(den, dtype=float), where=den > 0)
    return float(100 * ratio.mean())


CHUNK = 1 << 20  # values per chunk of the chunked sums below (bounds their float64 temporaries)


def mase_scale(train_target: np.ndarray, period: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on the training target (the MASE denominator), summed in chunks."""
    n = len(train_target)
    if n <= period:
        raise ValueError(f"the training target ({n} rows) is shorter than the seasonal period {period}")
    total = 0.0
    for a in range(period, n, CHUNK):
        b = min(a + CHUNK, n)
        total += float(np.abs(np.asarray(train_target[a:b], float) - np.asarray(train_target[a - period:b - period], float)).sum())
    return total / (n - period)


def metrics(y: np.ndarray, yhat: np.ndarray, scale: float) -> dict[str, float]:
    """MSE, RMSE, MAE, MAPE (%), sMAPE (%) and MASE over all values of y and ŷ."""
    y, yhat = np.ravel(y), np.ravel(yhat)
    mse = mean_squared_error(y, yhat)
    mae = mean_absolute_error(y, yhat)
    return {"mse": float(mse), "rmse": float(np.sqrt(mse)), "mae": float(mae),
            "mape": float(100 * mean_absolute_percentage_error(y, yhat)), "smape": smape(y, yhat),
            "mase": float(mae / scale)}


def mase_scales(prepared: Prepared, period: int) -> dict[str, float]:
    """The MASE denominators of a prepared series in scaled and original units (training rows only)."""
    train = slice(*prepared.bounds.train)
    return {"scaled": mase_scale(prepared.scaled[train, prepared.target_index], period),
            "original": mase_scale(prepared.to_original(prepared.scaled[train, prepared.target_index]), period)}


def metric_report(y: np.ndarray, yhat: np.ndarray, prepared: Prepared, period: int,
                  scales: dict[str, float] | None = None) -> dict:
    """Metrics of (n, horizon) forecasts in scaled and original units, overall and per horizon step.

    Computed one horizon step (n values) at a time: every metric is a mean over values or the root of one, and each
    step holds the same number of values, so the overall figure is the mean over steps (RMSE: the root of the mean MSE).
    """
    scales = scales or mase_scales(prepared, period)
    report: dict = {"per_horizon": {}}
    for units in ("scaled", "original"):
        steps = []
        for h in range(y.shape[1]):
            pair = (np.asarray(y[:, h], float), np.asarray(yhat[:, h], float))
            if units == "original":
                pair = (prepared.to_original(pair[0]), prepared.to_original(pair[1]))
            steps.append(metrics(*pair, scales[units]))
        overall = {m: float(np.mean([step[m] for step in steps])) for m in METRICS}
        overall["rmse"] = float(np.sqrt(overall["mse"]))
        report[units] = overall
        report["per_horizon"][units] = {m: [step[m] for step in steps] for m in METRICS}
    return {"scaled": report["scaled"], "original": report["original"], "per_horizon": report["per_horizon"]}


def squared_loss(errors: np.ndarray) -> np.ndarray:
    """Squared-error loss per forecast origin: errors (n,) squared, or (n, horizon) squared and averaged over steps."""
    e = np.asarray(errors, dtype=float)
    return e**2 if e.ndim == 1 else (e**2).reshape(len(e), -1).mean(axis=1)


def newey_west_variance(d: np.ndarray, lags: int) -> float:
    """Long-run variance of a series d (n,): γ0 + 2 Σ_{k=1..lags} (1 - k/(lags+1)) γk, autocovariances over n."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    dev = d - d.mean()
    variance = float(dev @ dev) / n
    for k in range(1, min(lags, n - 1) + 1):
        variance += 2 * (1 - k / (lags + 1)) * float(dev[k:] @ dev[:-k]) / n
    return variance


def diebold_mariano(e1: np.ndarray, e2: np.ndarray, horizon: int) -> dict[str, float]:
    """Diebold–Mariano test of equal squared-error accuracy of two forecasts of the same targets.

    e1, e2: forecast errors (n,) or (n, horizon) of the same n forecast origins (stride 1, in order); with a horizon
    axis each origin's loss is its mean squared error over the steps. The loss differential d = L(e1) - L(e2) has a
    Newey–West long-run variance with horizon - 1 lags (h-step forecasts from consecutive origins overlap), and the
    statistic carries the Harvey–Leybourne–Newbold (1997) small-sample correction, referred to Student's t with n - 1
    degrees of freedom. A negative statistic: the first forecast has the smaller loss. Returns the statistic, the
    two-sided p-value, the mean loss differential, n and the horizon.
    """
    from scipy import stats

    e1, e2 = np.asarray(e1, dtype=float), np.asarray(e2, dtype=float)
    if e1.shape != e2.shape:
        raise ValueError(f"diebold_mariano: errors of different shapes {e1.shape} and {e2.shape}")
    d = squared_loss(e1) - squared_loss(e2)
    n, h = len(d), int(horizon)
    if n < 2 or h < 1:
        raise ValueError(f"diebold_mariano: needs at least 2 forecast origins and a horizon >= 1 (got {n}, {h})")
    mean = float(d.mean())
    variance = newey_west_variance(d, h - 1)
    if variance <= 0:  # identical losses everywhere: no evidence either way (or a degenerate constant difference)
        statistic = 0.0 if mean == 0 else float(np.sign(mean) * np.inf)
    else:
        correction = np.sqrt(max((n + 1 - 2 * h + h * (h - 1) / n) / n, 0.0))
        statistic = float(mean / np.sqrt(variance / n) * correction)
    p_value = float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return {"statistic": statistic, "p_value": p_value, "mean_difference": mean, "n": n, "horizon": h}
