"""Series: `/v1/series/{id}/observations` appends observations (the retrain triggers fire after), and
`/v1/series/{id}/metrics` scores the issued forecasts against the arrived observations beside the baselines."""

# No `from __future__ import annotations`: FastAPI reads the body models of these routes from the annotations at
# run time, and they are built per app (the bundle's columns), so a string annotation could not be resolved.

import math
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException

from lstmkit.core.labels import level_label
from lstmkit.service import schemas as S
from lstmkit.service.context import Authorised, SeriesIdPath, Service, Svc, responses, trigger


def router(M: S.ApiModels, columns: list[str], fields: dict[str, str]) -> APIRouter:  # noqa: N803 - the request models
    """The series endpoints for a bundle's columns (`M`: its request models, `fields`: column -> field name)."""
    router = APIRouter(tags=["series"])

    @router.post("/v1/series/{series_id}/observations", response_model=S.AppendResponse, dependencies=Authorised,
                 responses=responses(400, 401, 413, 422, 503, _409="a timestamp already stored with other values"))
    def append(series_id: SeriesIdPath, body: M.Observations, s: Svc) -> S.AppendResponse:  # type: ignore[valid-type]
        """Append observations (idempotent per timestamp; all or nothing)."""
        b = s.registry.current()
        index = pd.DatetimeIndex(body.timestamps)
        values = {c: np.asarray(getattr(body.columns, fields[c]), dtype=float) for c in columns}
        res = s.storage.append(series_id, index, values, b.freq)
        job = None
        if res.stored:  # the rows are stored: a trigger that fails is logged, never the append's answer
            job = trigger(s.retrainer.observed, series_id, res.stored)
            if job is None and s.settings.drift:
                job = trigger(s.retrainer.check_drift, series_id)
        return S.AppendResponse(series_id=series_id, stored=res.stored, duplicates=res.duplicates,
                                last=S.format_timestamp(res.last) if res.last is not None else None,
                                total=res.total, retrain_job=job)

    @router.get("/v1/series/{series_id}/metrics", response_model=S.MetricsResponse, responses=responses(422, 503, _404="unknown series"))
    def metrics(series_id: SeriesIdPath, s: Svc) -> S.MetricsResponse:
        """Rolling error of the issued forecasts against arrived observations, beside the baselines; the drift band."""
        b = s.registry.current()
        total = s.storage.count(series_id)
        if total == 0:
            raise HTTPException(404, f"unknown series {series_id!r}: no observations stored")
        out = series_metrics(s, b, series_id, total)
        out.retrain_job = trigger(s.retrainer.check_drift, series_id)
        return out

    return router


def _score(errors: np.ndarray) -> S.ErrorScore:
    """MAE and RMSE of an error array (nulls when empty)."""
    errors = errors[np.isfinite(errors)]
    if not len(errors):
        return S.ErrorScore(n=0)
    return S.ErrorScore(n=int(len(errors)), mae=float(np.mean(np.abs(errors))), rmse=float(np.sqrt(np.mean(errors ** 2))))


def series_metrics(s: Service, b: Any, series_id: str, total: int) -> S.MetricsResponse:
    """Per-step rolling errors of the series' scored forecasts (the last `serve.metrics_window` per step), the
    seasonal-naive and persistence baselines at the same origins from the stored observations, interval coverage,
    and the drift band of the step-1 rolling MAE."""
    window = int(s.settings.metrics_window)
    labels = [level_label(v) for v in b.levels]
    steps: list[S.StepMetrics] = []
    rolling = None
    history = None
    m = max(1, int(b.seasonal_period))
    n_scored = 0
    for step in range(1, b.horizon + 1):
        part = s.storage.scored(series_id, b.target, last=window, step=step)
        if not len(part):
            continue
        # a forecast re-issued from the same origin counts once (the last one issued)
        part = part.drop_duplicates(["origin", "step"], keep="last")
        n_scored += len(part)
        if history is None:
            history = s.storage.history(series_id)[b.target]
        ts = pd.DatetimeIndex(part["timestamp"])
        origin = pd.DatetimeIndex(part["origin"])
        actual = part["actual"].to_numpy(dtype=float)
        persistence = history.reindex(origin).to_numpy(dtype=float)
        seasonal_at = [t - b.offset * (m * math.ceil(step / m)) for t in ts]
        seasonal = history.reindex(pd.DatetimeIndex(seasonal_at)).to_numpy(dtype=float)
        cover = {}
        for k in labels:
            lo, hi = part.get(f"lower_{k}"), part.get(f"upper_{k}")
            if lo is None or hi is None:
                cover[k] = None
                continue
            inside = (actual >= lo.to_numpy(dtype=float)) & (actual <= hi.to_numpy(dtype=float))
            cover[k] = float(np.mean(inside))
        model_score = _score(part["mean"].to_numpy(dtype=float) - actual)
        if step == 1:
            rolling = model_score.mae
        steps.append(S.StepMetrics(step=step, model=model_score, seasonal_naive=_score(seasonal - actual),
                                   persistence=_score(persistence - actual), coverage=cover))
    try:
        band = b.drift_band(window, s.settings.drift_level)
        band = band if math.isfinite(band) else None
    except ValueError:
        band = None
    drift = S.DriftInfo(window=window, level=s.settings.drift_level, band=band, rolling_mae=rolling,
                        outside=bool(band is not None and rolling is not None and rolling > band))
    return S.MetricsResponse(series_id=series_id, model_version=b.version, observations=total,
                             scored=n_scored, window=window, steps=steps, drift=drift)
