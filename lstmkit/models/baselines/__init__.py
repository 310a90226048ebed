"""The baselines every figure is reported beside, behind the forecaster contract, one per file: persistence,
seasonal naive, ridge on the flattened window (linear; NLinear-style with the last value removed) and an
autoregression. All work in scaled units on look-back windows (windows, lookback, channels) -> (windows, horizon).

`baselines(cfg)` lists the ones every run computes."""

from __future__ import annotations

from lstmkit.config import Config
from lstmkit.models.base import Forecaster
from lstmkit.models.baselines.autoregressive import AutoRegressive
from lstmkit.models.baselines.linear import LinearWindow
from lstmkit.models.baselines.persistence import Persistence
from lstmkit.models.baselines.seasonal_naive import SeasonalNaive

__all__ = ["AutoRegressive", "LinearWindow", "Persistence", "SeasonalNaive", "baselines"]


def baselines(cfg: Config) -> list[Forecaster]:
    """The baselines computed in every run (cfg with its `auto` settings resolved, see seasonality.resolve_config)."""
    alphas = list(cfg.evaluation.ridge_alphas)
    return [Persistence(), SeasonalNaive(cfg.evaluation.seasonal_period), LinearWindow(alphas),
            LinearWindow(alphas, last_value=True, name="nlinear"), AutoRegressive(max_lag=2 * cfg.evaluation.seasonal_period)]
