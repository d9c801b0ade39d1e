"""The event stream: what services read from ``GET /api/v1/events``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog

from bastion.core.clock import Clock
from bastion.core.errors import StorageUnavailable
from bastion.events.errors import PositionExpired
from bastion.events.model import (
    BATCH,
    HEARTBEAT_SECONDS,
    KEEPALIVE,
    Gap,
    deliverable,
    frame,
    opening,
    resumable,
)
from bastion.events.ports import Wakeups
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.events")
# With LISTEN/NOTIFY the table is still looked at this often, in case a notification was lost
# (a dropped listening connection); without it (SQLite), this is the wake-up.
SAFETY_POLL_SECONDS = 1.0
POLL_SECONDS = 0.2


class EventFeed:
    """One per process: notices new events (a notification, or a poll of the newest id) and
    wakes every open stream of this process."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        retention: timedelta,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self.retention = retention
        self._wakeups = wakeups
        self._changed = asyncio.Event()
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._newest = 0
        self._streams = 0
        self._closing = False

    @property
    def open_streams(self) -> int:
        return self._streams

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="bastion-event-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._wakeups is not None:
            await self._wakeups.stop()

    def close_streams(self) -> None:
        """End every open stream (the process is shutting down): clients reconnect, to another
        instance, from their Last-Event-ID, and miss nothing."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _watch(self) -> None:
        listening = False
        if self._wakeups is not None:
            try:
                listening = await self._wakeups.start(self._wake)
            except Exception:
                log.exception("events.listen_failed")
        every = SAFETY_POLL_SECONDS if listening else POLL_SECONDS
        while True:
            await asyncio.sleep(every)
            if not self._streams:
                continue
            try:
                async with self._uow(read_only=True) as uow:
                    newest = await uow.events.newest_id()
            except StorageUnavailable:
                continue
            except Exception:
                log.exception("events.poll_failed")
                continue
            if newest != self._newest:
                self._newest = newest
                self._wake()

    async def _changes(self, seen: int, timeout: float) -> None:
        """Until the feed notices a change after generation ``seen``, or ``timeout``."""
        if self._generation != seen:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def open(self, last_event_id: int | None) -> int:
        """Where a new stream starts: after ``last_event_id``, or at the newest event.

        Raises ``PositionExpired`` when events after ``last_event_id`` may have been purged.
        """
        async with self._uow(read_only=True) as uow:
            if last_event_id is None:
                return await uow.events.newest_id()
            found = await uow.events.position(last_event_id)
        if not resumable(last_event_id, found, self._clock.now(), self.retention):
            raise PositionExpired()
        return last_event_id

    async def stream(self, cursor: int) -> AsyncIterator[bytes]:
        """The stream's bytes from ``cursor`` on, until the client goes away."""
        self._streams += 1
        try:
            yield opening(cursor)
            gap = Gap()
            quiet_since = time.monotonic()
            while not self._closing:
                seen = self._generation
                async with self._uow(read_only=True) as uow:
                    events = await uow.events.after(cursor, BATCH)
                count = deliverable(cursor, [e.id or 0 for e in events], gap, time.monotonic())
                if count:
                    chunk = b"".join(frame(event) for event in events[:count])
                    cursor = events[count - 1].id or cursor
                    quiet_since = time.monotonic()
                    yield chunk
                    if count == BATCH:
                        continue
                elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = time.monotonic()
                    yield KEEPALIVE
                wait = HEARTBEAT_SECONDS
                if gap.first_seen is not None:
                    wait = 0.1
                await self._changes(seen, wait)
        finally:
            self._streams -= 1
