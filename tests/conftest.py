"""Shared fixtures: toy prepared series whose values encode their row number."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from lstmkit.preprocessing import Prepared, SplitBounds

FEATURE_OFFSET = 1000.0  # the feature channel holds 1000 + row, the target channel holds row


def make_row_prepared(n: int = 100, train: int = 60, val: int = 20, test: int | None = None,
                      lookback: int = 8, horizon: int = 3, target_values: np.ndarray | None = None,
                      feature_values: np.ndarray | None = None) -> Prepared:
    """A Prepared whose scaled target is the row number (or `target_values`) and feature is 1000 + row
    (or `feature_values`).

    Scalers are identities, so scaled and original units coincide and every window value names its row.
    """
    test = n - train - val if test is None else test
    rows = np.arange(n, dtype=float)
    y = rows if target_values is None else np.asarray(target_values, dtype=float)
    x = FEATURE_OFFSET + rows if feature_values is None else np.asarray(feature_values, dtype=float)
    original = np.stack([x, y], axis=1)
    identity = StandardScaler(with_mean=False, with_std=False).fit(original)
    identity_target = StandardScaler(with_mean=False, with_std=False).fit(original[:, 1:])
    bounds = SplitBounds(train=(0, train), val=(train, train + val), test=(train + val, train + val + test))
    return Prepared(index=pd.date_range("2024-01-01", periods=n, freq="h"), columns=["x", "target"], target="target",
                    bounds=bounds, scaler=identity, target_scaler=identity_target,
                    scaled=original.astype(np.float32), lookback=lookback, horizon=horizon)


@pytest.fixture(scope="session")
def row_prepared():
    """Factory for toy Prepared series (see make_row_prepared)."""
    return make_row_prepared
