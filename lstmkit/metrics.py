"""Forecast accuracy metrics: MSE, RMSE, MAE, MAPE, sMAPE and MASE, overall and per horizon step, in scaled and
original units."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

from lstmkit.preprocessing import Prepared

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
