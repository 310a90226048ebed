"""Calibrated quantiles from calibration forecasts: split conformal (`split_conformal`, per horizon step or jointly
over the path) and adaptive conformal inference over the test windows in time order (`adaptive_conformal`), for any
base kind of forecast (`point`, `quantile`, `samples`, `mc_dropout`; see `Forecasts`), with the scores of
`lstmkit.probabilistic.conformal`. Quantiles are (windows, horizon, K) on an ascending grid of levels, scaled units."""

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
