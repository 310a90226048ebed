"""Ridge regression on the flattened look-back window (`linear`), or NLinear-style on the window minus its last
value (`nlinear`), fitted by normal equations accumulated batch by batch over every training window, with the
regularisation chosen on the validation windows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from lstmkit.data.windows import Prepared
from lstmkit.models.base import Forecaster


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

    @classmethod
    def examples(cls) -> list[Forecaster]:
        """Plain ridge and its NLinear form."""
        return [cls([0.1, 10.0]), cls([0.1, 10.0], last_value=True, name="nlinear")]

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
