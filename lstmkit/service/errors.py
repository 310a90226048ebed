"""The service's one error handler for what lstmkit refuses on purpose, beside request validation and faults.

An `LstmkitError` (a window the bundle cannot forecast from, an append the storage refuses, a retrain that cannot
start, nothing to roll back to, a service shutting down) is answered with its own `status` and message; a request the
schema refuses gets 422 listing every error with its location; anything else is a fault: logged with its traceback
and answered 500 naming no internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lstmkit.core.errors import LstmkitError

log = logging.getLogger("lstmkit.service")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 listing every validation error with its location (field names, list positions)."""
        items = [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                  "msg": str(e.get("msg", "")).removeprefix("Value error, "), "type": str(e.get("type", ""))}
                 for e in exc.errors()]
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(LstmkitError)
    async def refused(request: Request, exc: LstmkitError) -> JSONResponse:
        """The error's own status (409, 422, 503) and its message."""
        return JSONResponse({"detail": str(exc)}, status_code=int(exc.status))

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        """A genuine server fault: logged with its traceback, answered 500 without internals."""
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__}); see the service log"},
                            status_code=500)
