"""Model versions: `/v1/models` (every version, which one serves) and `/v1/models/rollback`."""

from __future__ import annotations

from fastapi import APIRouter

from lstmkit.core.jsonable import jsonable
from lstmkit.service import schemas as S
from lstmkit.service.context import Authorised, Svc, responses, text

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=S.ModelsResponse, responses=responses(503))
def models(s: Svc) -> S.ModelsResponse:
    """Every model version, which one serves, its cutoff and test metrics."""
    b = s.registry.current()
    infos = [S.ModelInfo(version=m["version"], serving=bool(m.get("serving")), status=str(m.get("status", "")),
                         parent=m.get("parent"), created=text(m.get("created")), cutoff=s.cutoff(m["version"]),
                         path=text(m.get("path")), metrics=jsonable(m.get("metrics") or {}))
             for m in s.registry.versions()]
    return S.ModelsResponse(serving=b.version, columns=b.columns, target=b.target, lookback=b.lookback,
                            horizon=b.horizon, freq=b.freq, levels=b.levels, models=infos)


@router.post("/v1/models/rollback", response_model=S.RollbackResponse, dependencies=Authorised,
             responses=responses(400, 401, 413, 503, _409="nothing to roll back to"))
def rollback(s: Svc) -> S.RollbackResponse:
    """Serve the version the current one replaced (409 when there is none)."""
    previous = s.registry.current().version
    b = s.registry.rollback()
    return S.RollbackResponse(model_version=b.version, previous=previous)
