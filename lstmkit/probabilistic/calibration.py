"""Uncertainty stage: probabilistic forecasts of the run's selected model, calibrated on data it did not fit on,
scored on the test windows beside the conformalised seasonal-naive baseline.

Each `uncertainty.method` makes quantile forecasts `q` (windows, horizon, K) on one ascending grid of levels
(`UncertaintyConfig.grid`), in scaled units:

- `conformal`: split conformal on the selected model's point forecasts (absolute errors, per horizon step, finite-sample
  correction); `aci`: adaptive conformal inference walking the test windows in time order, each outcome used only once
  it has been observed (`lstmkit.probabilistic.conformal`);
- `quantile`: the selected architecture retrained with a non-crossing quantile head (pinball loss), trained here into
  `uncertainty/models/<architecture>-quantile/seed-<seed>/` unless the selected model already has one;
- `mc_dropout`: Monte Carlo dropout samples of the selected model (only its dropout layers sample);
- `deepar`: DeepAR's likelihood sample paths (the run's own DeepAR when the comparison trained one, else trained here
  into `uncertainty/models/deepar/seed-<seed>/`);
- `<base>+conformal` / `<base>+aci`: a probabilistic base calibrated: conformalised quantile regression (quantile and
  DeepAR's sample quantiles) or scores normalised by the MC-dropout spread.

The seasonal-naive baseline gets `conformal` and `aci` always. Calibration data: the validation windows when the model
was fitted on training rows (`val`), or the out-of-fold forecasts of walk-forward refits over the training+validation
rows (`oof`: each fold's model refitted from scratch on its prefix for the model's best epoch count and forecasting
the next block; residuals converted through original units into the run's scaling). The test windows are never
calibration data. Models trained by the stage (heads, DeepAR, fold refits) are saved with what they were trained from
and reloaded when the stage runs again, as the training stage does.

`uncertainty/metrics.json`: `{"<forecaster>/<method>": interval_metrics.report(...) + crps_estimator, seconds}` and
`meta`; `uncertainty/quantiles.npz`: the test quantiles of every entry, the grid, the actuals and the origins."""

from __future__ import annotations

import numpy as np

from lstmkit.probabilistic.conformal import SplitConformal, adaptive
from lstmkit.probabilistic.forecasts import Forecasts

SCORES = {"point": "absolute", "quantile": "cqr", "deepar": "cqr", "mc_dropout": "normalized"}


# ---------------------------------------------------------------- calibrators


def _fitted(base: str, grid: list[float], cal: Forecasts, joint: bool = False):
    """A SplitConformal with the base's score fitted on the calibration windows."""
    score = SCORES[base]
    return SplitConformal(grid, score=score, joint=joint).fit(cal.y, cal.point, **_extras(score, cal))


def split_conformal(base: str, grid: list[float], cal: Forecasts, test: Forecasts, joint: bool = False) -> np.ndarray:
    """Split conformal quantiles (n, h, K) of the test windows, calibrated on `cal` with the base's score."""
    return _fitted(base, grid, cal, joint).predict(test.point, **_extras(SCORES[base], test))


def adaptive_conformal(base: str, grid: list[float], cal: Forecasts, test: Forecasts, gamma: float) -> np.ndarray:
    """Adaptive conformal quantiles (n, h, K) of the test windows walked in time order: scores start from `cal`, and
    the step-h outcome of window t is used from window t + h on (delayed feedback, `conformal.adaptive`)."""
    return adaptive(_fitted(base, grid, cal), test.y, test.point, gamma=gamma, **_extras(SCORES[base], test))


def _extras(score: str, out: Forecasts) -> dict:
    """The keyword arguments a score needs besides actuals and point forecasts."""
    if score == "normalized":
        return {"spread": out.spread}
    if score == "cqr":
        return {"quantiles": out.quantiles}
    return {}
