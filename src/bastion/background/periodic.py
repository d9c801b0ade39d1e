"""Background tasks that run on one instance at a time: a lease in the database says which.

Every instance runs the same periodic tasks. Before a round, an instance takes the task's lease;
while another holds it, the round is skipped, since the holder is doing the work. The holder
renews the lease while its job runs, and gives it back when the job ends; a holder that dies lets
it lapse within ``LEASE_TTL``. Jobs decide from the database what is left to do, so a round that
follows another instance's finds little or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import structlog

from bastion.background.errors import LeaseHeld, LeaseLost
from bastion.core.clock import Clock
from bastion.core.errors import StorageUnavailable
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.background")
T = TypeVar("T")
Job = Callable[[], Coroutine[Any, Any, T]]
# A holder that dies lets the lease lapse after this long; a live one renews it three times as
# often, so a renewal may fail twice before another instance can take over.
LEASE_TTL = timedelta(seconds=60)
# Instances started together spread their rounds rather than all asking for a lease at once.
JITTER = 0.1


class OneAtATime:
    """Runs the jobs of one name under its lease: across every instance sharing the database,
    at most one of them runs at a time."""

    def __init__(
        self,
        name: str,
        uow: UnitOfWorkFactory,
        clock: Clock,
        *,
        holder: str,
        ttl: timedelta = LEASE_TTL,
    ) -> None:
        self.name = name
        self._uow = uow
        self._clock = clock
        self._holder = holder
        self._ttl = ttl
        # Taking the lease again renews it, so this holder's own jobs are kept apart here.
        self._running = asyncio.Lock()

    async def run(self, job: Job[T]) -> T:
        """Run ``job`` holding the lease. ``LeaseHeld`` at once if another holder has it;
        ``LeaseLost``, with the job cancelled, if the lease could not be renewed meanwhile."""
        if self._running.locked():
            raise LeaseHeld(self.name)
        async with self._running:
            if not await self._take():
                raise LeaseHeld(self.name)
            try:
                return await self._while_renewing(job)
            finally:
                await self._give_back()

    async def _while_renewing(self, job: Job[T]) -> T:
        work = asyncio.create_task(job())
        keeper = asyncio.create_task(self._renew_until_lost())
        try:
            await asyncio.wait((work, keeper), return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                raise LeaseLost(self.name)
            return work.result()
        finally:
            work.cancel()
            keeper.cancel()
            await asyncio.gather(work, keeper, return_exceptions=True)

    async def _renew_until_lost(self) -> None:
        while True:
            await asyncio.sleep(self._ttl.total_seconds() / 3)
            try:
                if await self._take():
                    continue
                log.error("lease.lost", lease=self.name)
            except StorageUnavailable:
                log.warning("lease.renewal_failed", lease=self.name)
            return

    async def _take(self) -> bool:
        async with self._uow(single_statement=True) as uow:
            taken = await uow.leases.acquire(self.name, self._holder, self._ttl, self._clock.now())
            await uow.commit()
        return taken

    async def _give_back(self) -> None:
        try:
            async with self._uow(single_statement=True) as uow:
                await uow.leases.release(self.name, self._holder)
                await uow.commit()
        except StorageUnavailable:
            log.warning("lease.release_failed", lease=self.name)  # it lapses by itself


class PeriodicTask:
    """Runs a job under its lease about every ``every`` seconds, the first time one interval
    after ``start`` (so that a process that lives a moment, or a fleet restarted at once, does
    not start with it)."""

    def __init__(self, runner: OneAtATime, job: Job[object], *, every: float) -> None:
        self._runner = runner
        self._job = job
        self._every = every
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._runner.name

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"bastion-{self.name}")

    async def stop(self) -> None:
        """Stop now: a job cut short rolls back its current transaction and gives the lease
        back; the next round, here or on another instance, finishes the work."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> bool:
        """One round: whether this instance ran the job (False: another instance holds it)."""
        try:
            await self._runner.run(self._job)
        except LeaseHeld:
            log.debug("background.skipped", task=self.name)
            return False
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(jittered(self._every))
            try:
                await self.run_once()
            except LeaseLost:
                pass  # logged when it was lost
            except StorageUnavailable:
                log.warning("background.database_unavailable", task=self.name)
            except Exception:
                log.exception("background.crashed", task=self.name)


def jittered(seconds: float) -> float:
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - a spread, not a secret
