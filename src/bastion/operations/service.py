"""What the operator's probes and scrapes report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from bastion.core.errors import StorageUnavailable
from bastion.operations.ports import MetricsExporter
from bastion.ratelimit.model import LimiterStatus
from bastion.ratelimit.ports import Limiter
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.health")
# Probes time out quickly; a database that does not answer within this is not ready.
READY_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Readiness:
    outbox_backlog: int | None  # None when the database does not answer
    limiter: LimiterStatus


class Operations:
    def __init__(self, uow: UnitOfWorkFactory, limiter: Limiter, metrics: MetricsExporter) -> None:
        self._uow = uow
        self._limiter = limiter
        self._metrics = metrics

    async def readiness(self) -> Readiness:
        return Readiness(await self._outbox_backlog(), self._limiter.status())

    async def metrics(self) -> bytes:
        await self._outbox_backlog()
        self._metrics.set_limiter_degraded(self._limiter.status() is LimiterStatus.DEGRADED)
        return self._metrics.exposition()

    async def _outbox_backlog(self) -> int | None:
        """The outbox backlog (also published as a gauge), or None if the database is
        unreachable."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with self._uow(read_only=True) as uow:
                    backlog = await uow.outbox.backlog()
        except (StorageUnavailable, TimeoutError) as exc:
            log.warning("readiness.database_unavailable", error=type(exc).__name__)
            return None
        self._metrics.set_outbox_backlog(backlog)
        return backlog
