"""Health: `/healthz` (the process answers) and `/readyz` (the model is loaded and warmed up)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lstmkit.service import schemas as S
from lstmkit.service.context import responses

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=S.Health)
def healthz() -> S.Health:
    """The process answers."""
    return S.Health(status="ok")


@router.get("/readyz", response_model=S.Ready, responses=responses(503))
def readyz(request: Request) -> Any:
    """200 once the model is loaded and warmed up, 503 before (and while stopping)."""
    svc = request.app.state.service
    if not svc.ready:
        return JSONResponse({"detail": "not ready: the model is loading or warming up"}, status_code=503)
    return S.Ready(status="ready", model_version=svc.registry.current().version)
