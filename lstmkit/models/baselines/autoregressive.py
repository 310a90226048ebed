"""An autoregression of the target on its own lags (up to two seasons), fitted by least squares on the training
rows and iterated over the horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.data.windows import Prepared
from lstmkit.models.base import Forecaster
from lstmkit.models.baselines.linear import NormalEquations
from lstmkit.models.metrics import CHUNK


@dataclass
class AutoRegressive(Forecaster):
    """statsmodels AutoReg on the target alone: order chosen by BIC and fitted on the training rows only, then rolled
    over every window with the parameters frozen (iterated multi-step forecasts from each window's own past).

    The order is selected on the last `select_rows` training rows (all of them for shorter series: statsmodels builds
    a rows x max_lag design matrix); the parameters of that order are the least-squares fit over every training row,
    accumulated in batches (`NormalEquations`), which is what AutoReg's OLS computes.
    """

    max_lag: int = 48
    name: str = "autoreg"
    select_rows: int = 20_000
    lags_: int | None = None
    params_: np.ndarray | None = None  # (1 + lags,): intercept, then the coefficients of y[t-1] .. y[t-lags]

    @classmethod
    def examples(cls) -> list[Forecaster]:
        """A short maximum order (the order is still chosen by BIC)."""
        return [cls(max_lag=8)]

    def _fit(self, prepared: Prepared) -> None:
        from statsmodels.tsa.ar_model import ar_select_order

        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index]
        max_lag = min(self.max_lag, prepared.lookback, len(y) // 4)
        recent = np.asarray(y[-self.select_rows:], float)
        selected = ar_select_order(recent, maxlag=min(max_lag, len(recent) // 4), ic="bic", trend="c").ar_lags
        self.lags_ = int(max(selected)) if selected else 1
        self._refit(prepared)

    def _refit(self, prepared: Prepared) -> None:
        """Fit the parameters of the chosen order on the training rows of `prepared` (e.g. training+validation)."""
        y = prepared.scaled[slice(*prepared.bounds.train), prepared.target_index]
        p, eq = self.lags_, NormalEquations()
        lagged = np.lib.stride_tricks.sliding_window_view(y, p + 1)  # row t: y[t .. t + p], a view
        chunk = max(1, CHUNK // (p + 1))  # rows per chunk: about CHUNK float64 values at a time
        for a in range(0, len(lagged), chunk):
            rows = np.asarray(lagged[a:a + chunk], float)
            eq.add(rows[:, p - 1::-1], rows[:, p:])  # regressors y[t-1] .. y[t-p], as AutoReg orders them
        coef, intercept = eq.solve(0.0)
        self.params_ = np.concatenate([intercept, coef[:, 0]])

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        const, phi = self.params_[0], self.params_[1:]  # phi[i] multiplies y[t - 1 - i]
        history = windows[:, -self.lags_:, self.target_index_].astype(float)  # (windows, lags), oldest first
        out = np.empty((len(windows), self.horizon_))
        for h in range(self.horizon_):
            out[:, h] = const + history[:, ::-1] @ phi
            history = np.concatenate([history[:, 1:], out[:, h:h + 1]], axis=1)
        return out

    def parameter_count(self) -> int:
        return int(np.size(self.params_))
