"""How access-token checks learn that a session is still live without a query per request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence

from bastion.sessions.model import Session

# SQLite refuses statements with more than 32,766 parameters; stay far below it.
MAX_LOOKUP_BATCH = 500
LookUp = Callable[[Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, Session]]]


class SessionLiveness:
    """A per-process memory of sessions recently seen live in the database.

    Checking the database on every request would make token validation as slow as a query.
    Remembering a live session for a fraction of a second keeps revocation visible everywhere
    within that delay, while most requests never touch the database.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._seen: dict[uuid.UUID, float] = {}
        # Sessions used since they were last confirmed: the ones worth confirming early.
        self._in_use: set[uuid.UUID] = set()

    def known_live(self, session_id: uuid.UUID) -> bool:
        seen = self._seen.get(session_id)
        if seen is None or time.monotonic() - seen >= self._ttl:
            return False
        self._in_use.add(session_id)
        return True

    def remember(self, session_id: uuid.UUID, confirmed_at: float | None = None) -> None:
        """Trust the session until ``ttl`` after ``confirmed_at`` (a ``time.monotonic()``
        reading taken before the database said it was live), or after now."""
        if len(self._seen) > 100_000:
            self._prune()
        self._seen[session_id] = time.monotonic() if confirmed_at is None else confirmed_at
        self._in_use.discard(session_id)

    def forget(self, session_ids: Iterable[uuid.UUID]) -> None:
        for session_id in session_ids:
            self._seen.pop(session_id, None)
            self._in_use.discard(session_id)

    def lapsing(self, limit: int) -> list[uuid.UUID]:
        """Up to ``limit`` sessions in use that are past half their trusted time.

        A query that runs anyway can confirm them too: sessions in use then lapse together
        and share queries, instead of each costing one when its own time runs out.
        """
        horizon = time.monotonic() - self._ttl / 2
        lapsing = [sid for sid in self._in_use if self._seen.get(sid, horizon) <= horizon]
        return lapsing[:limit]

    def _prune(self) -> None:
        horizon = time.monotonic() - self._ttl
        self._seen = {sid: seen for sid, seen in self._seen.items() if seen >= horizon}
        self._in_use &= self._seen.keys()


class BatchedLookup:
    """Session lookups that share queries.

    Sessions remembered together lapse together, and when one lapses every request in flight
    for it misses at once. Without sharing, each of them would query (and a busy process would
    overflow its connection pool). Here a session being looked up is looked up once, whoever
    asks, and the sessions asked for in the same turn of the event loop share one query.
    """

    def __init__(self, look_up: LookUp) -> None:
        self._look_up = look_up
        self._pending: dict[uuid.UUID, asyncio.Future[Session | None]] = {}
        self._batch: list[uuid.UUID] = []
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, session_id: uuid.UUID) -> Session | None:
        lookup = self._pending.get(session_id)
        if lookup is None:
            loop = asyncio.get_running_loop()
            lookup = loop.create_future()
            self._pending[session_id] = lookup
            if not self._batch:
                loop.call_soon(self._start)
            self._batch.append(session_id)
            if len(self._batch) >= MAX_LOOKUP_BATCH:
                self._start()
        # Shielded: a caller that gives up must not cancel the lookup others wait for.
        return await asyncio.shield(lookup)

    def _start(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[uuid.UUID]) -> None:
        try:
            found = await self._look_up(batch)
        except Exception as exc:
            for session_id in batch:
                self._settle(session_id).set_exception(exc)
        except BaseException:
            for session_id in batch:
                self._settle(session_id).cancel()
            raise
        else:
            for session_id in batch:
                self._settle(session_id).set_result(found.get(session_id))

    def _settle(self, session_id: uuid.UUID) -> asyncio.Future[Session | None]:
        return self._pending.pop(session_id)
