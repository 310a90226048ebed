"""Forecasts of one forecaster on one split in the form calibration needs (`Forecasts`: the point forecast, the base
quantiles or sample paths, the MC-dropout spread, and the actuals, all (windows, horizon[, K or samples]) in scaled
units), made by `forecasts_of` from any forecaster of the contract, and joined over folds by `concat`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmkit.data.windows import Prepared
from lstmkit.models.base import Forecaster
from lstmkit.probabilistic import interval_metrics as im

BATCH = 512  # windows per batch when sampling (samples of a batch: BATCH x samples x horizon floats)


# ---------------------------------------------------------------- forecasts on a set of windows


@dataclass
class Forecasts:
    """One forecaster's outputs on a set of windows, scaled units: actuals and point forecasts (n, horizon); quantiles
    (n, horizon, K) on the grid when it has them; the samples' standard deviation (n, horizon) and, on the test windows,
    the CRPS of the samples (mean, scoringrules' ensemble estimator) and their PIT values (n, horizon)."""

    y: np.ndarray
    point: np.ndarray
    quantiles: np.ndarray | None = None
    spread: np.ndarray | None = None
    crps: float | None = None
    pit: np.ndarray | None = None

    def scaled_by(self, a: float, b: float) -> Forecasts:
        """The same forecasts in other units value -> a * value + b (spread -> |a| spread; a > 0 keeps the order)."""
        return Forecasts(a * self.y + b, a * self.point + b, None if self.quantiles is None else a * self.quantiles + b,
                         None if self.spread is None else abs(a) * self.spread, self.crps, self.pit)


def concat(parts: list[Forecasts]) -> Forecasts:
    """Forecasts of several window sets one after the other (CRPS and PIT are test-only and dropped)."""
    def cat(name: str):
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)
    return Forecasts(cat("y"), cat("point"), cat("quantiles"), cat("spread"))


def forecasts_of(f: Forecaster, prepared: Prepared, split: str, kind: str, grid: list[float], n_samples: int = 100,
                 seed: int = 0, with_scores: bool = False) -> Forecasts:
    """Outputs of `f` on every window of a split: `kind` is `point`, `quantile` (its quantile head on the grid) or
    `samples` (sample paths summarised batch by batch into grid quantiles and a spread; with `with_scores` also the
    samples' CRPS and PIT against the actuals)."""
    if kind == "point" or f.get_tag("neural") is False:
        return Forecasts(prepared.targets(split).astype(float), f.predict_split(prepared, split))
    prepared = prepared.with_lookback(f.lookback_)
    ys, points, qs, spreads, pits, crps = [], [], [], [], [], 0.0
    for i, (x, y) in enumerate(prepared.batches(split, BATCH)):
        y = y.astype(float)
        ys.append(y)
        points.append(f.predict(x))
        if kind == "quantile":
            qs.append(f.predict_quantiles(x, grid))
            continue
        samples = f.predict_samples(x, n_samples, seed + i)  # (b, S, h); one seed per batch: reproducible
        qs.append(np.moveaxis(np.quantile(samples, grid, axis=1), 0, -1))
        spreads.append(samples.std(axis=1, ddof=1) if n_samples > 1 else np.zeros_like(y))
        if with_scores:
            crps += float(im.crps_samples(y, samples)) * len(y)
            pits.append(im.pit_samples(y, samples, seed=seed + i))
    n = sum(len(y) for y in ys)
    return Forecasts(np.concatenate(ys), np.concatenate(points), np.concatenate(qs),
                     np.concatenate(spreads) if spreads else None,
                     crps / n if with_scores and kind == "samples" else None,
                     np.concatenate(pits) if pits else None)
