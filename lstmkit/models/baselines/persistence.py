"""Persistence: every step of the horizon repeats the last observed value of the target."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.models.base import Forecaster


@dataclass
class Persistence(Forecaster):
    """Repeat the last observed value of the target for every horizon step."""

    name: str = "persistence"

    def _predict(self, windows: np.ndarray) -> np.ndarray:
        return np.repeat(windows[:, -1, self.target_index_].astype(float)[:, None], self.horizon_, axis=1)
