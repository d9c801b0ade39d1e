"""The retention purge: deleting what the retention rules no longer keep."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import structlog

from bastion.audit.model import AuditEvent, EventType
from bastion.core.clock import Clock
from bastion.retention.model import Purgeable, PurgeReport, RetentionRules
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.retention")
PURGE_LEASE = "retention-purge"
# After each batch the purge rests this many times as long as the batch took. Measured at a
# million rows on 2 cores, resting as long as each batch (half of one connection's time) slowed
# concurrent logins' p95 by 1.7-1.9 times; the purge has all day, logins do not.
REST_PER_BATCH = 3


class RetentionPurge:
    """Deletes in batches of ``batch_size`` rows, one short statement each, and after each batch
    leaves the database to requests for three times as long as the batch took: the purge never
    holds locks for long, and takes at most a quarter of one connection's time however large the
    backlog."""

    def __init__(
        self, uow: UnitOfWorkFactory, clock: Clock, rules: RetentionRules, *, batch_size: int
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._batch_size = batch_size

    async def purge(self) -> PurgeReport:
        """Delete every row past its retention as of now; an audit event says how many went."""
        now = self._clock.now()
        report = PurgeReport(
            {
                kind: await self._purge(kind, before)
                for kind, before in self._rules.cutoffs(now).items()
            }
        )
        if report.total:
            counts = {kind.value: count for kind, count in report.deleted.items() if count}
            async with self._uow() as uow:
                await uow.audit.record(AuditEvent(EventType.RETENTION_PURGED, now, details=counts))
                await uow.commit()
            log.info("retention.purged", **counts)
        return report

    async def _purge(self, kind: Purgeable, before: datetime) -> int:
        deleted = 0
        while True:
            started = time.monotonic()
            async with self._uow(single_statement=True) as uow:
                batch = await uow.purgeable.delete(kind, before, self._batch_size)
                await uow.commit()
            deleted += batch
            if batch < self._batch_size:
                return deleted
            await asyncio.sleep(REST_PER_BATCH * (time.monotonic() - started))
