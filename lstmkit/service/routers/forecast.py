"""Forecasts: `/v1/forecast` and `/v1/forecast/batch`, from a series' stored observations or from a window in the
body, through the request batcher; answers in the bundle's units with its interval levels."""

# No `from __future__ import annotations`: FastAPI reads the body models of these routes from the annotations at
# run time, and they are built per app (the bundle's columns), so a string annotation could not be resolved.

import asyncio
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lstmkit.core.errors import ForecastInputError
from lstmkit.core.labels import level_label
from lstmkit.service import schemas as S
from lstmkit.service.context import Authorised, Service, Svc, responses

PANDAS_MAX = pd.Timestamp.max.to_pydatetime(warn=False)  # the last timestamp a forecast may reach (microseconds)


def json_response(content: Any) -> Response:
    """A forecast answer already checked by `answer` (finite numbers, the response model's keys in its order),
    serialised by pydantic-core as FastAPI's response_model would (the same bytes) without validating it again."""
    return Response(content=pydantic_core.to_json(content), media_type="application/json")


def router(M: S.ApiModels, columns: list[str], fields: dict[str, str]) -> APIRouter:  # noqa: N803 - the request models
    """The forecast endpoints for a bundle's columns (`M`: its request models, `fields`: column -> field name)."""
    router = APIRouter(tags=["forecast"])

    def fast_window(b: Any, w: Any) -> tuple[np.ndarray, pd.Timestamp] | None:
        """The last look-back rows of a body window as (lookback, channels) values and the last timestamp, when the
        bundle's step is a fixed duration and they lie exactly one step apart (numpy only); None: ask check_window.

        The schema has already checked the columns, finite values and increasing timestamps."""
        n = b.lookback
        if not isinstance(b.offset, pd.offsets.Tick) or len(w.timestamps) < n or b.offset.nanos % 1000:
            return None
        # The schema parsed the timestamps to naive datetimes (microseconds): compare their steps in Python, which
        # costs a tenth of converting 336 datetime objects to datetime64 with numpy.
        step = timedelta(microseconds=b.offset.nanos // 1000)
        ts = w.timestamps[-n:]
        if any(later - earlier != step for earlier, later in zip(ts, ts[1:])):
            return None
        values = np.empty((n, len(columns)))
        for j, c in enumerate(columns):
            values[:, j] = getattr(w.columns, fields[c])[-n:]
        return values, pd.Timestamp(ts[-1])

    def fast_future(b: Any, last: pd.Timestamp, horizon: int) -> list[datetime] | None:
        """The `horizon` timestamps after `last` on a fixed step as datetimes (what `Bundle.future_index` gives, without
        building a pandas index per request); None when they leave pandas' range (future_index names the problem)."""
        if last.nanosecond:  # a fraction finer than datetime's microseconds: pandas keeps it
            return None
        step = timedelta(microseconds=b.offset.nanos // 1000)
        start = last.to_pydatetime()
        try:
            if start + horizon * step > PANDAS_MAX:
                return None
        except OverflowError:
            return None
        return [start + k * step for k in range(1, horizon + 1)]

    def window_of(s: Service, b: Any, req: Any, where: str) -> tuple[np.ndarray, pd.Timestamp, pd.DatetimeIndex | list[datetime]]:
        """The validated look-back window of a request as (lookback, channels) values in the bundle's column order,
        its last timestamp and the future index (HTTPException naming the problem)."""
        fast = fast_window(b, req.window) if req.window is not None else None
        if fast is not None:
            values, last = fast
            future = fast_future(b, last, req.horizon)
            if future is not None:
                return values, last, future
        else:
            if req.series_id is not None:
                frame = s.storage.history(req.series_id, last=b.lookback)
                if len(frame) == 0:
                    raise HTTPException(404, f"{where}unknown series {req.series_id!r}: no observations stored")
                if len(frame) < b.lookback:
                    raise HTTPException(422, f"{where}series {req.series_id!r} has {len(frame)} stored observation(s); "
                                             f"a forecast needs the last {b.lookback} (the model's look-back)")
            else:
                w = req.window
                frame = pd.DataFrame({c: getattr(w.columns, fields[c]) for c in columns},
                                     index=pd.DatetimeIndex(w.timestamps), dtype=float)
            try:
                window = b.check_window(frame)
            except ForecastInputError as e:
                raise HTTPException(422, f"{where}{e}") from None
            values, last = window.to_numpy(dtype=float), window.index[-1]
        try:
            future = b.future_index(last, req.horizon)
        except (OverflowError, ValueError) as e:
            raise HTTPException(422, f"{where}the forecast's timestamps cannot be represented ({e})") from None
        return values, last, future

    def answer(s: Service, req: Any, last: pd.Timestamp, future: pd.DatetimeIndex | list[datetime], fc: Any, labels: list[str],
               where: str) -> Any:
        """The response of one forecast; stores it when it came from a series."""
        if not (np.isfinite(fc.mean).all() and np.isfinite(fc.lower).all() and np.isfinite(fc.upper).all()):
            raise HTTPException(422, f"{where}the forecast is not finite: the window's values are far outside the "
                                     "range the model can forecast from")
        if req.series_id is not None:
            s.storage.add_forecast(req.series_id, fc.version, last, future, fc.mean,
                                   {k: fc.lower[:, j] for j, k in enumerate(labels)},
                                   {k: fc.upper[:, j] for j, k in enumerate(labels)})
        stamps = [t.isoformat() for t in future]  # pd.Timestamp or datetime: the same text as S.format_timestamp
        mean, lower, upper = fc.mean.tolist(), fc.lower.tolist(), fc.upper.tolist()  # Python floats, one call each
        rows = []
        for i, t in enumerate(stamps):
            row = {"timestamp": t, "mean": mean[i]}
            for j, k in enumerate(labels):
                row[f"lower_{k}"] = lower[i][j]
                row[f"upper_{k}"] = upper[i][j]
            rows.append(row)
        return {"model_version": fc.version, "forecast": rows}

    def run_forecasts(s: Service, reqs: list[Any], batch: bool) -> list[Any]:
        """Validate every request, forecast all windows through the batcher together, then store and answer."""
        b = s.registry.current()
        prepared = []
        for i, req in enumerate(reqs):
            where = f"requests[{i}]: " if batch else ""
            prepared.append((req, *window_of(s, b, req, where), where))
        futures = [s.batcher.submit(values, req.horizon) for req, values, _, _, _ in prepared]
        results = [f.result(timeout=120) for f in futures]
        labels = [level_label(v) for v in b.levels]
        return [answer(s, req, last, future, fc, labels, where)
                for (req, _, last, future, where), fc in zip(prepared, results)]

    async def forecasts(s: Service, reqs: list[Any], batch: bool) -> list[Any]:
        """`run_forecasts` without a thread hop for a few windows in the body (validated on the event loop, awaited
        on the batcher); requests that read or write the database, and large batches, run in the thread pool."""
        if len(reqs) > 8 or any(r.series_id is not None for r in reqs):
            return await run_in_threadpool(run_forecasts, s, reqs, batch)
        b = s.registry.current()
        prepared = [(req, *window_of(s, b, req, f"requests[{i}]: " if batch else ""), f"requests[{i}]: " if batch else "")
                    for i, req in enumerate(reqs)]
        futures = [asyncio.wrap_future(s.batcher.submit(values, req.horizon))
                   for req, values, _, _, _ in prepared]
        results = await asyncio.gather(*futures)
        labels = [level_label(v) for v in b.levels]
        return [answer(s, req, last, future, fc, labels, where)
                for (req, _, last, future, where), fc in zip(prepared, results)]

    @router.post("/v1/forecast", response_model=M.ForecastResponse, dependencies=Authorised,
                 responses=responses(400, 401, 413, 422, 503, _404="unknown series"))
    async def forecast(body: M.ForecastRequest, s: Svc) -> Any:  # type: ignore[valid-type]
        """Forecast `horizon` steps from a series' stored observations or from a window; the answering version."""
        return json_response((await forecasts(s, [body], batch=False))[0])

    @router.post("/v1/forecast/batch", response_model=M.BatchResponse, dependencies=Authorised,
                 responses=responses(400, 401, 413, 422, 503, _404="unknown series"))
    async def forecast_batch(body: M.BatchRequest, s: Svc) -> Any:  # type: ignore[valid-type]
        """Several forecasts in one request (all validated first: one bad request refuses the batch, naming it)."""
        return json_response({"forecasts": await forecasts(s, list(body.requests), batch=True)})

    return router
