"""The FastAPI application of `lstmkit serve`: forecasts, observations, rolling metrics, retraining and rollback.

`create_app(bundle, settings, api_key)` builds the application; its lifespan opens the storage (SQLite file in the
state folder or PostgreSQL by URL), registers the bundle in the model registry, marks jobs a killed service left
running as failed, warms the model up and starts the request batcher (`lstmkit.service.inference`). `/readyz`
answers 503 until all of that is done.

Every POST needs the header `X-API-Key` equal to the key (`LSTMKIT_API_KEY` for `lstmkit serve`, compared in
constant time): without it the answer is 401 and nothing changes. Bodies larger than `serve.max_body_bytes` are
refused with 413 (from Content-Length before reading, and while reading when the client streams more). Bad input is
a 4xx with a message naming the field, column, row or timestamp; a 500 only for a genuine server fault (logged).
"""

import asyncio
import hmac
import json
import logging
import math
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pydantic_core
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from lstmkit.bundle.format import CALIBRATION_FILE, PREPROCESSING_FILE
from lstmkit.config import ServeConfig
from lstmkit.core.errors import BatcherClosed, BundleError, ForecastInputError, RegistryError, RetrainError, StorageError
from lstmkit.core.labels import level_label
from lstmkit.service import schemas as S
from lstmkit.service.inference import Batcher
from lstmkit.service.registry import Registry
from lstmkit.service.retrain import Retrainer
from lstmkit.service.storage import Storage

log = logging.getLogger("lstmkit.service")
PANDAS_MAX = pd.Timestamp.max.to_pydatetime(warn=False)  # the last timestamp a forecast may reach (microseconds)


def json_response(content: Any) -> Response:
    """A forecast answer already checked by `answer` (finite numbers, the response model's keys in its order),
    serialised by pydantic-core as FastAPI's response_model would (the same bytes) without validating it again."""
    return Response(content=pydantic_core.to_json(content), media_type="application/json")

API_KEY_HEADER = "X-API-Key"
API_KEY_ENV = "LSTMKIT_API_KEY"


def default_state(bundle: Path) -> Path:
    """The state folder used when none is given: `<bundle folder>-service` beside the bundle."""
    bundle = Path(bundle).resolve()
    return bundle.with_name(f"{bundle.name}-service")


def resolve_places(bundle: Path, settings: ServeConfig, db_url: str | None = None,
                   state: Path | None = None) -> tuple[Path, str]:
    """The state folder and database URL a service uses (arguments, then `serve.state`/`serve.db`, then defaults)."""
    state_dir = Path(state or settings.state or default_state(bundle)).resolve()
    url = db_url or settings.db or f"sqlite:///{state_dir / 'service.db'}"
    return state_dir, url


def safe_url(url: str) -> str:
    """A database URL with its password hidden (for logs)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]


def _bundle_shape(bundle: Path) -> dict:
    """Columns, target, horizon and levels read from a bundle's JSON files (no TensorFlow), for the request models."""
    try:
        pre = json.loads((bundle / PREPROCESSING_FILE).read_text())
        cal = json.loads((bundle / CALIBRATION_FILE).read_text())
        return {"columns": list(pre["columns"]), "target": pre["target"], "horizon": int(pre["horizon"]),
                "lookback": int(pre["lookback"]), "levels": [float(v) for v in cal["levels"]]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{bundle}: not a readable bundle ({e})") from None


class _BodyGuard:
    """ASGI middleware: the API key on every POST (401), then the body size limit (413), before the app reads."""

    def __init__(self, app: Any, key: str | None, max_bytes: int):
        """Wrap `app`; `key` None refuses every POST (no key configured)."""
        self.app = app
        self.key = key.encode() if key is not None else None
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Check key and size of POST requests; pass everything else through."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not key_matches(self.key, headers.get(API_KEY_HEADER.lower().encode())):
            await _send_json(send, 401, _missing_key_message(self.key))
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not a number")
                return
            if n > self.max_bytes:
                await _send_json(send, 413, f"request body of {n} bytes exceeds serve.max_body_bytes ({self.max_bytes})")
                return
        body = bytearray()
        more = True
        while more:  # read (at most max_bytes) before the app sees anything
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _send_json(send, 413, f"request body exceeds serve.max_body_bytes ({self.max_bytes})")
                return
        sent = False

        async def replay() -> dict:
            """The buffered body once, then whatever the server says (a disconnect)."""
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def key_matches(expected: bytes | None, given: bytes | None) -> bool:
    """Constant-time comparison of the API key (False when either is missing)."""
    return expected is not None and given is not None and hmac.compare_digest(expected, given)


def _missing_key_message(expected: bytes | None) -> str:
    """The 401 message."""
    if expected is None:
        return f"this service has no API key configured ({API_KEY_ENV}): every POST is refused"
    return f"missing or wrong API key: send the header {API_KEY_HEADER}"


async def _send_json(send: Any, status: int, detail: str) -> None:
    """Answer a request directly from the ASGI middleware with {"detail": ...}."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Service:
    """What the endpoints use: storage, registry, retrainer, batcher, and whether the service is ready."""

    def __init__(self, bundle: Path, settings: ServeConfig, state: Path, db_url: str):
        """Remember where things are; `start()` opens them."""
        self.bundle_path, self.settings, self.state, self.db_url = bundle, settings, state, db_url
        self.storage: Any = None
        self.registry: Any = None
        self.retrainer: Any = None
        self.batcher: Any = None
        self.ready = False
        self._cutoffs: dict[str, str | None] = {}

    def start(self) -> None:
        """Open storage and registry, recover jobs, warm the model up and start the batcher."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.storage = Storage(self.db_url)
        self.registry = Registry(self.state, self.storage, self.bundle_path)
        self.retrainer = Retrainer(self.registry, self.storage, self.settings, self.db_url)
        self.retrainer.recover()
        self.registry.current().warm_up((1, self.settings.batch_max))
        self.batcher = Batcher(self.registry.current, self.settings.batch_max, self.settings.batch_wait_ms)
        self.ready = True
        log.info("ready: model version %s, state %s, database %s", self.registry.current().version, self.state,
                 safe_url(self.db_url))

    def stop(self) -> None:
        """Stop taking requests, finish queued forecasts, stop the retrainer and close the database."""
        self.ready = False
        for part in (self.batcher, self.retrainer, self.storage):
            close = getattr(part, "close", None) or getattr(part, "dispose", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - shutting down: log and go on
                    log.exception("error while closing %s", type(part).__name__)

    def cutoff(self, version: str) -> str | None:
        """The training cutoff of a model version (from its bundle's preprocessing.json), ISO-8601."""
        if version not in self._cutoffs:
            try:
                pre = json.loads((self.registry.models / version / "preprocessing.json").read_text())
                self._cutoffs[version] = S.format_timestamp(pd.Timestamp(pre["cutoff"]))
            except (OSError, ValueError, KeyError):
                self._cutoffs[version] = None
        return self._cutoffs[version]


ERRORS = {400: {"model": S.ErrorResponse, "description": "the body cannot be read (not UTF-8 / JSON)"},
          401: {"model": S.ErrorResponse, "description": "missing or wrong X-API-Key"},
          413: {"model": S.ErrorResponse, "description": "body larger than serve.max_body_bytes"},
          422: {"model": S.ErrorResponse, "description": "invalid input (the message names the field)"},
          503: {"model": S.ErrorResponse, "description": "the service is starting or stopping"}}


def _errors(*codes: int, **extra: str) -> dict:
    """OpenAPI response entries for the given status codes."""
    out = {c: ERRORS[c] for c in codes}
    for code, text in extra.items():
        out[int(code.strip("_"))] = {"model": S.ErrorResponse, "description": text}
    return out


def _clean_msg(msg: str) -> str:
    """A pydantic message without its `Value error, ` prefix."""
    return msg.removeprefix("Value error, ")


def create_app(bundle: Path, settings: ServeConfig, api_key: str | None, db_url: str | None = None,
               state: Path | None = None) -> FastAPI:
    """The service over `bundle` (a bundle folder): see the module docstring. `api_key` None refuses every POST."""
    bundle = Path(bundle).resolve()
    shape = _bundle_shape(bundle)
    state_dir, url = resolve_places(bundle, settings, db_url, state)
    svc = Service(bundle, settings, state_dir, url)
    M = S.api_models(shape["columns"], shape["levels"], shape["horizon"], settings.max_rows)
    columns: list[str] = shape["columns"]
    fields = {c: S._field_name(c) for c in columns}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        """Start the service (blocking until warmed up), stop it at shutdown."""
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(title="lstmkit forecasting service", version="1",
                  description="Forecasts with intervals from an lstmkit inference bundle; observations, rolling "
                              "metrics of the issued forecasts, retraining and rollback. POST endpoints need the "
                              f"header {API_KEY_HEADER}.", lifespan=lifespan)
    app.state.service = svc
    app.add_middleware(_BodyGuard, key=api_key, max_bytes=settings.max_body_bytes)
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"the service's key ({API_KEY_ENV})")
    expected = api_key.encode() if api_key is not None else None

    async def authorised(key: Annotated[str | None, Depends(header)]) -> None:
        """401 unless X-API-Key matches (the middleware already refused; this documents the scheme)."""
        if not key_matches(expected, key.encode() if key is not None else None):
            raise HTTPException(401, _missing_key_message(expected))

    async def ready() -> Service:
        """The service, or 503 while it starts or stops."""
        if not svc.ready:
            raise HTTPException(503, "the service is not ready (starting or stopping)")
        return svc

    Svc = Annotated[Service, Depends(ready)]
    SeriesIdPath = Annotated[str, PathParam(pattern=S.SERIES_ID_PATTERN, description="series id ([A-Za-z0-9_.-]{1,128})")]

    # ------------------------------------------------------------ errors

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 listing every validation error with its location (field names, list positions)."""
        items = [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                  "msg": _clean_msg(str(e.get("msg", ""))), "type": str(e.get("type", ""))} for e in exc.errors()]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: StorageError) -> JSONResponse:
        """The storage's own status (409 conflicting re-send, 422 out of order / gap / off grid) and message."""
        return JSONResponse({"detail": str(exc)}, status_code=int(getattr(exc, "status", 422)))

    @app.exception_handler(ForecastInputError)
    async def bad_window(request: Request, exc: ForecastInputError) -> JSONResponse:
        """422 with the bundle's message (columns, time step, gaps, values, rows)."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RetrainError)
    async def retrain_error(request: Request, exc: RetrainError) -> JSONResponse:
        """409 while another retrain job runs; 422 for a retrain that cannot start."""
        return JSONResponse({"detail": str(exc)}, status_code=int(getattr(exc, "status", 422)))

    @app.exception_handler(BatcherClosed)
    async def closing(request: Request, exc: BatcherClosed) -> JSONResponse:
        """503 for a forecast arriving while the service shuts down."""
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        """409: nothing to roll back to, or a version that cannot be served."""
        return JSONResponse({"detail": str(exc)}, status_code=int(getattr(exc, "status", 409)))

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        """A genuine server fault: logged with its traceback, answered 500 without internals."""
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the service log"},
                            status_code=500)

    # ------------------------------------------------------------ health

    @app.get("/healthz", response_model=S.Health, tags=["health"])
    def healthz() -> S.Health:
        """The process answers."""
        return S.Health(status="ok")

    @app.get("/readyz", response_model=S.Ready, responses=_errors(503), tags=["health"])
    def readyz() -> Any:
        """200 once the model is loaded and warmed up, 503 before (and while stopping)."""
        if not svc.ready:
            return JSONResponse({"detail": "not ready: the model is loading or warming up"}, status_code=503)
        return S.Ready(status="ready", model_version=svc.registry.current().version)

    # ------------------------------------------------------------ models

    @app.get("/v1/models", response_model=S.ModelsResponse, responses=_errors(503), tags=["models"])
    def models(s: Svc) -> S.ModelsResponse:
        """Every model version, which one serves, its cutoff and test metrics."""
        b = s.registry.current()
        infos = [S.ModelInfo(version=m["version"], serving=bool(m.get("serving")), status=str(m.get("status", "")),
                             parent=m.get("parent"), created=_text(m.get("created")), cutoff=s.cutoff(m["version"]),
                             path=_text(m.get("path")), metrics=S.finite_or_none(m.get("metrics") or {}))
                 for m in s.registry.versions()]
        return S.ModelsResponse(serving=b.version, columns=b.columns, target=b.target, lookback=b.lookback,
                                horizon=b.horizon, freq=b.freq, levels=b.levels, models=infos)

    @app.post("/v1/models/rollback", response_model=S.RollbackResponse, dependencies=[Depends(authorised)],
              responses=_errors(400, 401, 413, 503, _409="nothing to roll back to"), tags=["models"])
    def rollback(s: Svc) -> S.RollbackResponse:
        """Serve the version the current one replaced (409 when there is none)."""
        previous = s.registry.current().version
        b = s.registry.rollback()
        return S.RollbackResponse(model_version=b.version, previous=previous)

    # ------------------------------------------------------------ observations

    @app.post("/v1/series/{series_id}/observations", response_model=S.AppendResponse, dependencies=[Depends(authorised)],
              responses=_errors(400, 401, 413, 422, 503, _409="a timestamp already stored with other values"),
              tags=["series"])
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

    # ------------------------------------------------------------ forecasts

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

    @app.post("/v1/forecast", response_model=M.ForecastResponse, dependencies=[Depends(authorised)],
              responses=_errors(400, 401, 413, 422, 503, _404="unknown series"), tags=["forecast"])
    async def forecast(body: M.ForecastRequest, s: Svc) -> Any:  # type: ignore[valid-type]
        """Forecast `horizon` steps from a series' stored observations or from a window; the answering version."""
        return json_response((await forecasts(s, [body], batch=False))[0])

    @app.post("/v1/forecast/batch", response_model=M.BatchResponse, dependencies=[Depends(authorised)],
              responses=_errors(400, 401, 413, 422, 503, _404="unknown series"), tags=["forecast"])
    async def forecast_batch(body: M.BatchRequest, s: Svc) -> Any:  # type: ignore[valid-type]
        """Several forecasts in one request (all validated first: one bad request refuses the batch, naming it)."""
        return json_response({"forecasts": await forecasts(s, list(body.requests), batch=True)})

    # ------------------------------------------------------------ metrics

    @app.get("/v1/series/{series_id}/metrics", response_model=S.MetricsResponse, responses=_errors(422, 503, _404="unknown series"),
             tags=["series"])
    def metrics(series_id: SeriesIdPath, s: Svc) -> S.MetricsResponse:
        """Rolling error of the issued forecasts against arrived observations, beside the baselines; the drift band."""
        b = s.registry.current()
        total = s.storage.count(series_id)
        if total == 0:
            raise HTTPException(404, f"unknown series {series_id!r}: no observations stored")
        out = series_metrics(s, b, series_id, total)
        out.retrain_job = trigger(s.retrainer.check_drift, series_id)
        return out

    # ------------------------------------------------------------ retraining and jobs

    @app.post("/v1/retrain", status_code=202, response_model=S.JobAccepted, dependencies=[Depends(authorised)],
              responses=_errors(400, 401, 413, 422, 503, _404="unknown series", _409="another retrain job is running"),
              tags=["retraining"])
    def retrain(body: S.RetrainRequest, s: Svc) -> S.JobAccepted:
        """Start a retrain job on a series' stored history (202 with the job id; poll /v1/jobs/{id})."""
        if s.storage.count(body.series_id) == 0:
            raise HTTPException(404, f"unknown series {body.series_id!r}: no observations stored")
        return S.JobAccepted(job_id=s.retrainer.submit(body.series_id, body.reason))

    @app.get("/v1/jobs/{job_id}", response_model=S.Job, responses=_errors(422, 503, _404="unknown job"), tags=["retraining"])
    def job(job_id: Annotated[str, PathParam(pattern=S.JOB_ID_PATTERN)], s: Svc) -> S.Job:
        """A retrain job's state (404 unknown)."""
        j = s.storage.job(job_id)
        if j is None:
            raise HTTPException(404, f"unknown job {job_id!r}")
        detail = j.get("detail") or {}
        return S.Job(id=str(j["id"]), kind=str(j.get("kind", "")), status=str(j.get("status", "")),
                     created=_text(j.get("created")), started=_text(j.get("started")), finished=_text(j.get("finished")),
                     detail=S.finite_or_none(detail if isinstance(detail, dict) else {"value": detail}),
                     error=_text(j.get("error")))

    return app


def _text(value: Any) -> str | None:
    """A timestamp or other value as text for a response (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (pd.Timestamp,)) or hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def trigger(fn: Any, *args: Any) -> str | None:
    """Run a retrain trigger (every-N or drift); a failure is logged and yields no job."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - the request it follows has succeeded
        log.exception("retrain trigger %s failed", getattr(fn, "__name__", fn))
        return None


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
