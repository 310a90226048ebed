"""Seasonal naive: each step repeats the value one season (`evaluation.seasonal_period` steps) earlier; the forecast
of a split reads the series itself when the period is longer than the look-back window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.core.errors import ForecasterError
from lstmkit.data.windows import Prepared
from lstmkit.models.base import Forecaster


@dataclass
class SeasonalNaive(Forecaster):
    """Repeat the value one season before each target step (from the observed past only)."""

    period: int = 24
    name: str = "seasonal_naive"

    @classmethod
    def examples(cls) -> list[Forecaster]:
        """A daily season of hourly data, and a season shorter than the horizon (later steps repeat it)."""
        return [cls(24), cls(2)]

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
