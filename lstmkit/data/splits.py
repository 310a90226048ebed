"""Chronological splits: train, validation and test row ranges in time order, and how many windows each holds."""

from __future__ import annotations

from dataclasses import dataclass

from lstmkit.config import Config
from lstmkit.core.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitBounds:
    """Row ranges [start, stop) of the three chronological parts."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def __getitem__(self, split: str) -> tuple[int, int]:
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {s: list(self[s]) for s in SPLITS}


def split_bounds(n_rows: int, train: float, val: float, test: float) -> SplitBounds:
    """Chronological train/val/test row ranges from fractions (< 1) or row counts (integers).

    Fractions are turned into boundaries cumulatively, so fractions adding up to 1 cover every row exactly.
    """
    edges, used, position = [0], 0.0, 0
    for name, v in (("train", train), ("val", val), ("test", test)):
        if isinstance(v, float) and 0 < v < 1:
            used += v
            position = int(round(used * n_rows))
        elif float(v) == int(v) and v >= 1:
            position = edges[-1] + int(v)
            used = position / n_rows
        else:
            raise ConfigError(f"split.{name}: {v!r} is neither a fraction below 1 nor a whole row count")
        edges.append(position)
    if edges[-1] > n_rows:
        sizes = [b - a for a, b in zip(edges, edges[1:])]
        raise ConfigError(f"split sizes {sizes} add up to {edges[-1]} rows but the series has only {n_rows}")
    return SplitBounds(train=(edges[0], edges[1]), val=(edges[1], edges[2]), test=(edges[2], edges[3]))


def window_count(bounds: tuple[int, int], lookback: int, horizon: int) -> int:
    """Number of windows whose targets lie entirely inside the given rows."""
    return max(0, bounds[1] - first_window_start(bounds, lookback) - (lookback + horizon) + 1)


def first_window_start(bounds: tuple[int, int], lookback: int) -> int:
    """First row of the earliest window: its inputs may reach back into the previous split."""
    return max(0, bounds[0] - lookback)


def check_splits(n_rows: int, cfg: Config) -> SplitBounds:
    """Split boundaries for a series of n_rows, or a ConfigError if a split cannot hold one window."""
    bounds = split_bounds(n_rows, cfg.split.train, cfg.split.val, cfg.split.test)
    lookback, horizon = cfg.window.lookback, cfg.window.horizon
    a, b = bounds.train
    if b - a < lookback + horizon:
        raise ConfigError(f"the training split (rows {a}-{b - 1}, {b - a} rows) is shorter than window.lookback + "
                          f"window.horizon = {lookback + horizon}: the series ({n_rows} rows) is too short for this window")
    for split in ("val", "test"):
        if window_count(bounds[split], lookback, horizon) == 0:
            a, b = bounds[split]
            raise ConfigError(f"the {split} split (rows {a}-{b - 1}, {b - a} rows) is too short for one window of "
                              f"horizon {horizon}; enlarge it or shorten window.horizon")
    return bounds
