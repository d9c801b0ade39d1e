"""The operator's endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bastion.bootstrap import Services
from bastion.core.errors import StorageUnavailable
from bastion.http.deps import ServicesDep
from bastion.http.metrics import CONTENT_TYPE
from bastion.ratelimit.model import LimiterStatus

router = APIRouter(tags=["operations"])
log = structlog.get_logger("bastion.health")
# Probes time out quickly; a database that does not answer within this is not ready.
READY_TIMEOUT_SECONDS = 3.0


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
async def readyz(services: ServicesDep) -> JSONResponse:
    """Redis being down does not make an instance unready: limits fall back to process memory
    (reported as ``degraded``)."""
    backlog = await _outbox_backlog(services)
    ready = backlog is not None
    body = Readiness(
        status="ok" if ready else "unavailable",
        database="ok" if ready else "unavailable",
        redis=services.limiter.status().value,
        outbox_backlog=backlog,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format), summed over every worker",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
async def metrics(services: ServicesDep) -> Response:
    await _outbox_backlog(services)
    services.metrics.set_limiter_degraded(services.limiter.status() is LimiterStatus.DEGRADED)
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)


async def _outbox_backlog(services: Services) -> int | None:
    """The outbox backlog (also published as a gauge), or None if the database is unreachable."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with services.uow(read_only=True) as uow:
                backlog = await uow.outbox.backlog()
    except (StorageUnavailable, TimeoutError) as exc:
        log.warning("readiness.database_unavailable", error=type(exc).__name__)
        return None
    services.metrics.set_outbox_backlog(backlog)
    return backlog
