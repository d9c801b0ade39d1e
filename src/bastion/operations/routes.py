"""The operator's endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from bastion.http.deps import provider
from bastion.operations.service import Operations

router = APIRouter(tags=["operations"])
OperationsDep = Annotated[Operations, Depends(provider(Operations))]


class Liveness(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    status: str = Field(examples=["ok", "unavailable"])
    database: str = Field(examples=["ok", "unavailable"])
    redis: str = Field(examples=["ok", "not configured", "degraded"])
    outbox_backlog: int | None = Field(description="Emails waiting to be delivered")


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: 200 when the database answers, else 503",
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
async def readyz(operations: OperationsDep) -> JSONResponse:
    """Redis being down does not make an instance unready: limits fall back to process memory
    (reported as ``degraded``)."""
    readiness = await operations.readiness()
    ready = readiness.outbox_backlog is not None
    body = Readiness(
        status="ok" if ready else "unavailable",
        database="ok" if ready else "unavailable",
        redis=readiness.limiter.value,
        outbox_backlog=readiness.outbox_backlog,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format), summed over every worker",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(operations: OperationsDep) -> Response:
    return Response(await operations.metrics(), media_type=CONTENT_TYPE_LATEST)
