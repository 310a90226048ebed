"""The FastAPI application of `lstmkit serve`: forecasts, observations, rolling metrics, retraining and rollback.

`create_app(bundle, settings, api_key)` builds the application from its parts: the gate (`middleware`: the API key of
every POST, the body size limit), the one error handler (`errors`), the running service (`context.Service`) and one
router per resource (`routers/`). Its lifespan opens the storage (SQLite file in the state folder or PostgreSQL by
URL), registers the bundle in the model registry, marks jobs a killed service left running as failed, warms the model
up and starts the request batcher; `/readyz` answers 503 until all of that is done.

Every POST needs the header `X-API-Key` equal to the key (`LSTMKIT_API_KEY` for `lstmkit serve`, compared in
constant time): without it the answer is 401 and nothing changes. Bodies larger than `serve.max_body_bytes` are
refused with 413. Bad input is a 4xx with a message naming the field, column, row or timestamp; a 500 only for a
genuine server fault (logged).
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from lstmkit.bundle.format import CALIBRATION_FILE, PREPROCESSING_FILE
from lstmkit.config import ServeConfig
from lstmkit.core.errors import BundleError
from lstmkit.service import errors
from lstmkit.service import schemas as S
from lstmkit.service.context import Service, safe_url
from lstmkit.service.middleware import API_KEY_ENV, API_KEY_HEADER, BodyGuard
from lstmkit.service.routers import forecast, health, jobs, models, series

__all__ = ["API_KEY_ENV", "create_app", "default_state", "resolve_places", "safe_url"]


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


def _bundle_shape(bundle: Path) -> dict:
    """Columns, target, horizon and levels read from a bundle's JSON files (no TensorFlow), for the request models."""
    try:
        pre = json.loads((bundle / PREPROCESSING_FILE).read_text())
        cal = json.loads((bundle / CALIBRATION_FILE).read_text())
        return {"columns": list(pre["columns"]), "target": pre["target"], "horizon": int(pre["horizon"]),
                "lookback": int(pre["lookback"]), "levels": [float(v) for v in cal["levels"]]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{bundle}: not a readable bundle ({e})") from None


def create_app(bundle: Path, settings: ServeConfig, api_key: str | None, db_url: str | None = None,
               state: Path | None = None) -> FastAPI:
    """The service over `bundle` (a bundle folder): see the module docstring. `api_key` None refuses every POST."""
    bundle = Path(bundle).resolve()
    shape = _bundle_shape(bundle)
    state_dir, url = resolve_places(bundle, settings, db_url, state)
    svc = Service(bundle, settings, state_dir, url)
    M = S.api_models(shape["columns"], shape["levels"], shape["horizon"], settings.max_rows)  # noqa: N806
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
    app.state.api_key = api_key.encode() if api_key is not None else None
    app.add_middleware(BodyGuard, key=api_key, max_bytes=settings.max_body_bytes)
    errors.install(app)
    for router in (health.router, models.router, series.router(M, columns, fields), forecast.router(M, columns, fields),
                   jobs.router):
        app.include_router(router)
    return app
