"""Delivers the outbox: claims due messages, sends them, retries with backoff."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Protocol

import structlog

from bastion.core.clock import Clock
from bastion.core.errors import StorageUnavailable
from bastion.mail.layout import MailLayout
from bastion.mail.model import FORGOTTEN_ONCE_SENT, CircuitBreaker, QueuedMessage, retry_at
from bastion.mail.ports import MailTransport
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.mail")
LEASE = timedelta(seconds=120)
BATCH = 20
# After a wake-up, messages queued in the next moments join the same claim and the same
# "sent" update: under a burst of sign-ups that is two transactions per batch, not per email.
GATHER_SECONDS = 0.05


class DeliveryObserver(Protocol):
    def sent(self, kind: str) -> None: ...

    def failed(self, kind: str) -> None: ...


class OutboxWorker:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        transport: MailTransport,
        clock: Clock,
        *,
        sender: str,
        poll_seconds: float,
        max_attempts: int,
        layout: MailLayout,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._uow = uow
        self._layout = layout
        self._transport = transport
        self._clock = clock
        self._sender = sender
        self._poll_seconds = poll_seconds
        self._max_attempts = max_attempts
        self._observer = observer
        self._breaker = CircuitBreaker()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bastion-outbox")

    def wake(self) -> None:
        """Deliver now rather than at the next poll: a use case just queued a message."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the message in hand, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delivered = await self.deliver_due()
            except StorageUnavailable:
                delivered = 0
            except Exception:
                log.exception("outbox.crashed")
                delivered = 0
            if delivered < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
                    await asyncio.sleep(GATHER_SECONDS)
                self._wake.clear()

    async def deliver_due(self) -> int:
        """One pass over the due messages; returns how many were attempted."""
        now = self._clock.now()
        if not self._breaker.allows(now):
            return 0
        async with self._uow(single_statement=True) as uow:
            batch = await uow.outbox.claim_due(now, BATCH, now + LEASE)
            await uow.commit()
        sent: list[QueuedMessage] = []
        tried = 0
        try:
            for queued in batch:
                if self._stopping or not self._breaker.allows(self._clock.now()):
                    break
                tried += 1
                if await self._deliver(queued):
                    sent.append(queued)
        finally:
            # Recorded together once the batch is done: a crash before this line delivers
            # these messages again when their lease lapses (at least once, never lost).
            if sent:
                await self._record_sent(sent)
            # Left untried by a shutdown or an open breaker: handed back at once, or they would
            # wait for their lease to lapse (two minutes) while other workers could send them.
            if tried < len(batch):
                await self._release(batch[tried:])
        return len(batch)

    async def _release(self, untried: list[QueuedMessage]) -> None:
        async with self._uow(single_statement=True) as uow:
            await uow.outbox.release([queued.id for queued in untried])
            await uow.commit()

    async def _record_sent(self, sent: list[QueuedMessage]) -> None:
        async with self._uow(single_statement=True) as uow:
            await uow.outbox.mark_sent([queued.id for queued in sent], self._clock.now())
            await uow.commit()
        forgotten = [queued.id for queued in sent if queued.message.kind in FORGOTTEN_ONCE_SENT]
        if forgotten:
            async with self._uow(single_statement=True) as uow:
                await uow.outbox.forget(forgotten)
                await uow.commit()
        for queued in sent:
            log.info("mail.sent", kind=queued.message.kind, message_id=queued.id)
            if self._observer is not None:
                self._observer.sent(queued.message.kind)

    async def _deliver(self, queued: QueuedMessage) -> bool:
        """Send one message; a failure is scheduled for a retry (or given up on) at once."""
        kind = queued.message.kind
        try:
            await self._transport.send(self._layout.dress(queued.message), self._sender)
        except Exception as exc:  # any transport failure is retried, never lost
            now = self._clock.now()
            self._breaker.record_failure(now)
            error = f"{type(exc).__name__}: {exc}"[:500]
            async with self._uow(single_statement=True) as uow:
                if queued.attempts >= self._max_attempts:
                    await uow.outbox.mark_failed(queued.id, now, error)
                else:
                    await uow.outbox.mark_retry(queued.id, retry_at(now, queued.attempts), error)
                await uow.commit()
            log.warning(
                "mail.failed",
                kind=kind,
                message_id=queued.id,
                attempts=queued.attempts,
                error=type(exc).__name__,
            )
            if self._observer is not None:
                self._observer.failed(kind)
            return False
        self._breaker.record_success()
        return True
