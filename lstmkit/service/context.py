"""What every endpoint uses: the running service (storage, registry, retrainer, batcher) and the dependencies that
hand it over (503 while it starts or stops) and check the API key (401), with the OpenAPI error entries."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader

from lstmkit.config import ServeConfig
from lstmkit.service import schemas as S
from lstmkit.service.inference import Batcher
from lstmkit.service.middleware import API_KEY_ENV, API_KEY_HEADER, key_matches, missing_key_message
from lstmkit.service.registry import Registry
from lstmkit.service.retrain import Retrainer
from lstmkit.service.storage import Storage

log = logging.getLogger("lstmkit.service")


def safe_url(url: str) -> str:
    """A database URL with its password hidden (for logs)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url.split("@")[-1]


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



ERRORS = {400: {"model": S.ErrorResponse, "description": "the body cannot be read (not UTF-8 / JSON)"},
          401: {"model": S.ErrorResponse, "description": "missing or wrong X-API-Key"},
          413: {"model": S.ErrorResponse, "description": "body larger than serve.max_body_bytes"},
          422: {"model": S.ErrorResponse, "description": "invalid input (the message names the field)"},
          503: {"model": S.ErrorResponse, "description": "the service is starting or stopping"}}


def responses(*codes: int, **extra: str) -> dict:
    """OpenAPI response entries for the given status codes (`_404="unknown series"` for one of its own)."""
    out = {c: ERRORS[c] for c in codes}
    for code, text in extra.items():
        out[int(code.strip("_"))] = {"model": S.ErrorResponse, "description": text}
    return out


header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"the service's key ({API_KEY_ENV})")


async def authorised(request: Request, key: Annotated[str | None, Depends(header)]) -> None:
    """401 unless X-API-Key matches (the middleware already refused; this documents the scheme)."""
    expected = request.app.state.api_key
    if not key_matches(expected, key.encode() if key is not None else None):
        raise HTTPException(401, missing_key_message(expected))


async def ready(request: Request) -> Service:
    """The service, or 503 while it starts or stops."""
    svc = request.app.state.service
    if not svc.ready:
        raise HTTPException(503, "the service is not ready (starting or stopping)")
    return svc


Svc = Annotated[Service, Depends(ready)]
SeriesIdPath = Annotated[str, PathParam(pattern=S.SERIES_ID_PATTERN, description="series id ([A-Za-z0-9_.-]{1,128})")]
Authorised = [Depends(authorised)]


def text(value: Any) -> str | None:
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
