"""Retraining: `/v1/retrain` starts a job on a series' stored history, `/v1/jobs/{id}` tells its state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam

from lstmkit.core.jsonable import jsonable
from lstmkit.service import schemas as S
from lstmkit.service.context import Authorised, Svc, responses, text

router = APIRouter(tags=["retraining"])


@router.post("/v1/retrain", status_code=202, response_model=S.JobAccepted, dependencies=Authorised,
             responses=responses(400, 401, 413, 422, 503, _404="unknown series", _409="another retrain job is running"))
def retrain(body: S.RetrainRequest, s: Svc) -> S.JobAccepted:
    """Start a retrain job on a series' stored history (202 with the job id; poll /v1/jobs/{id})."""
    if s.storage.count(body.series_id) == 0:
        raise HTTPException(404, f"unknown series {body.series_id!r}: no observations stored")
    return S.JobAccepted(job_id=s.retrainer.submit(body.series_id, body.reason))


@router.get("/v1/jobs/{job_id}", response_model=S.Job, responses=responses(422, 503, _404="unknown job"))
def job(job_id: Annotated[str, PathParam(pattern=S.JOB_ID_PATTERN)], s: Svc) -> S.Job:
    """A retrain job's state (404 unknown)."""
    j = s.storage.job(job_id)
    if j is None:
        raise HTTPException(404, f"unknown job {job_id!r}")
    detail = j.get("detail") or {}
    return S.Job(id=str(j["id"]), kind=str(j.get("kind", "")), status=str(j.get("status", "")),
                 created=text(j.get("created")), started=text(j.get("started")), finished=text(j.get("finished")),
                 detail=jsonable(detail if isinstance(detail, dict) else {"value": detail}),
                 error=text(j.get("error")))
