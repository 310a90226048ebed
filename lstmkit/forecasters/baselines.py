"""The baselines every figure is reported beside, behind the forecaster contract: persistence, seasonal naive,
ridge on the flattened window (linear; NLinear-style with the last value removed) and an autoregression.

All work in scaled units on look-back windows (windows, lookback, channels) -> (windows, horizon); the seasonal
naive forecast of a split reads the series itself when its period is longer than the look-back window.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from lstmkit.config import Config
from lstmkit.forecasters.base import Forecaster, ForecasterError
from lstmkit.metrics import CHUNK
from lstmkit.preprocessing import Prepared


@dataclass
class Persistence(Forecaster):
    """Repeat the last observed value of the target for every horizon step."""

    name: str = "persistence"

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        return np.repeat(windows[:, -1, self.target_index_].astype(float)[:, None], self.horizon_, axis=1)


@dataclass
class SeasonalNaive(Forecaster):
    """Repeat the value one season before each target step (from the observed past only)."""

    period: int = 24
    name: str = "seasonal_naive"

    def _sources(self, horizon: int) -> np.ndarray:
        """Offsets (horizon,) from the forecast origin (0 = last observed value) of the latest same-phase value."""
        h = np.arange(1, horizon + 1)
        return h - self.period * np.ceil(h / self.period).astype(int)

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        if windows.shape[1] < self.period:
            raise ForecasterError(f"{self.name}: windows of {windows.shape[1]} steps are shorter than the seasonal "
                                  f"period {self.period}")
        return windows[:, windows.shape[1] - 1 + self._sources(self.horizon_), self.target_index_].astype(float)

    def predict_split(self, prepared: Prepared, split: str, batch_size: int = 4096) -> np.ndarray:
        """Forecasts of a split's windows from the series itself (the period may exceed the look-back window)."""
        self._check_fitted()
        y = prepared.scaled[:, prepared.target_index]
        source = prepared.origins(split)[:, None] + self._sources(prepared.horizon)[None, :]
        if source.size and source.min() < 0:
            raise ForecasterError(f"seasonal period {self.period} reaches before the first row of the series")
        return y[source].astype(float)


class NormalEquations:
    """Least squares with an intercept from running sums (X^T X, X^T Y, column sums) accumulated batch by batch.

    Memory is features x features whatever the number of rows, and the solution is the one sklearn's Ridge
    (cholesky solver, fit_intercept=True) finds from all rows at once. Sums are taken about the first batch's means,
    which keeps the centring exact enough in float64 for data of any level.
    """

    def __init__(self) -> None:
        self.n = 0
        self.shift_x: np.ndarray | None = None
        self.shift_y: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add rows: x (rows, features), y (rows, outputs)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if self.shift_x is None:
            self.shift_x, self.shift_y = x.mean(axis=0), y.mean(axis=0)
            self.sum_x, self.sum_y = np.zeros(x.shape[1]), np.zeros(y.shape[1])
            self.xtx, self.xty = np.zeros((x.shape[1], x.shape[1])), np.zeros((x.shape[1], y.shape[1]))
        x, y = x - self.shift_x, y - self.shift_y
        self.n += len(x)
        self.sum_x += x.sum(axis=0)
        self.sum_y += y.sum(axis=0)
        self.xtx += x.T @ x
        self.xty += x.T @ y

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Ridge coefficients (features, outputs) and intercept (outputs,) for a penalty alpha (0: ordinary least squares)."""
        from scipy import linalg

        mx, my = self.sum_x / self.n, self.sum_y / self.n
        a = self.xtx - self.n * np.outer(mx, mx)
        b = self.xty - self.n * np.outer(mx, my)
        a.flat[::a.shape[0] + 1] += alpha
        try:
            coef = linalg.solve(a, b, assume_a="pos")
        except linalg.LinAlgError:  # singular (alpha 0 with collinear columns): the minimum-norm solution
            coef = linalg.lstsq(a, b)[0]
        return coef, (my + self.shift_y) - (mx + self.shift_x) @ coef


@dataclass
class LinearWindow(Forecaster):
    """Ridge regression from the flattened look-back window (all channels) to the horizon, alpha chosen on validation.

    With `last_value=True` it is NLinear-style: each channel's last observed value is subtracted from its window
    and the target's is added back to the forecast, which makes the model immune to level shifts.
    Fitted on every training window through normal equations accumulated in batches (`NormalEquations`), so memory
    stays at (lookback x channels)^2 whatever the length of the series; predictions are made batch by batch.
    """

    alphas: list = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    last_value: bool = False
    name: str = "linear"
    batch_size: int | None = None  # windows per batch; None: Prepared.batch_windows()
    alpha_: float | None = None
    coef_: np.ndarray | None = None       # (lookback x channels, horizon), inputs flattened time-major
    intercept_: np.ndarray | None = None  # (horizon,)

    def _inputs(self, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch's flattened inputs and the level (windows, 1) added back to forecasts (zero unless last_value)."""
        level = x[:, -1:, :] if self.last_value else np.zeros_like(x[:, -1:, :])
        return (x - level).reshape(len(x), -1), level[:, :, target]

    def _batches(self, prepared: Prepared, split: str):
        """(flattened inputs, targets less the level) of a split's windows, batch by batch."""
        for x, y in prepared.batches(split, self.batch_size):
            flat, level = self._inputs(x, prepared.target_index)
            yield flat, y - level

    def _normal_equations(self, prepared: Prepared) -> NormalEquations:
        """Sums over every training window of `prepared`."""
        eq = NormalEquations()
        for x, y in self._batches(prepared, "train"):
            eq.add(x, y)
        return eq

    def _fit(self, prepared: Prepared) -> None:
        from scipy.linalg import LinAlgWarning

        eq = self._normal_equations(prepared)
        with warnings.catch_warnings():  # small alphas on long windows are ill-conditioned; validation judges them
            warnings.simplefilter("ignore", LinAlgWarning)
            solutions = {a: eq.solve(a) for a in self.alphas}
        errors = dict.fromkeys(self.alphas, 0.0)
        for x, y in self._batches(prepared, "val"):
            for a, (coef, intercept) in solutions.items():
                errors[a] += float(((x @ coef + intercept - y) ** 2).sum())
        self.alpha_ = min(errors, key=errors.get)
        self.coef_, self.intercept_ = solutions[self.alpha_]

    def _refit(self, prepared: Prepared) -> None:
        """Refit with the chosen alpha on the training windows of `prepared` (e.g. training+validation)."""
        from scipy.linalg import LinAlgWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            self.coef_, self.intercept_ = self._normal_equations(prepared).solve(self.alpha_)

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        flat, level = self._inputs(windows, self.target_index_)
        return flat @ self.coef_ + self.intercept_ + level


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


def baselines(cfg: Config) -> list[Forecaster]:
    """The baselines computed in every run (cfg with its `auto` settings resolved, see seasonality.resolve_config)."""
    alphas = list(cfg.evaluation.ridge_alphas)
    return [Persistence(), SeasonalNaive(cfg.evaluation.seasonal_period), LinearWindow(alphas),
            LinearWindow(alphas, last_value=True, name="nlinear"), AutoRegressive(max_lag=2 * cfg.evaluation.seasonal_period)]
