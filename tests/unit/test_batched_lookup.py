"""Session lookups share queries: one per batch of lapsed sessions, one per session at a time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bastion.core.errors import StorageUnavailable
from bastion.sessions.liveness import MAX_LOOKUP_BATCH, BatchedLookup
from bastion.sessions.model import Session

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def session(session_id: uuid.UUID) -> Session:
    return Session(
        id=session_id,
        user_id=uuid.uuid4(),
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
        last_seen_at=NOW,
        ip=None,
        user_agent=None,
        remember_me=False,
        revoked_at=None,
        revoke_reason=None,
    )


class Database:
    """Answers lookups for the sessions it holds and remembers every query it was asked."""

    def __init__(self, existing: Sequence[uuid.UUID]) -> None:
        self.rows = {session_id: session(session_id) for session_id in existing}
        self.queries: list[list[uuid.UUID]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: Exception | None = None

    async def look_up(self, session_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Session]:
        self.queries.append(list(session_ids))
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {sid: self.rows[sid] for sid in session_ids if sid in self.rows}


def stalled(session_id: uuid.UUID) -> tuple[Database, BatchedLookup]:
    """Lookups over a database that holds one session and answers once the test opens its gate."""
    database = Database([session_id])
    database.gate.clear()
    return database, BatchedLookup(database.look_up)


async def test_sessions_asked_for_together_share_one_query() -> None:
    live = [uuid.uuid4() for _ in range(20)]
    gone = uuid.uuid4()
    database = Database(live)
    lookups = BatchedLookup(database.look_up)

    found = await asyncio.gather(*(lookups.get(sid) for sid in [*live, gone]))

    assert [s.id if s else None for s in found] == [*live, None]
    assert len(database.queries) == 1
    assert sorted(database.queries[0]) == sorted([*live, gone])


async def test_requests_for_a_session_being_looked_up_wait_for_that_lookup() -> None:
    session_id = uuid.uuid4()
    database, lookups = stalled(session_id)
    first = asyncio.ensure_future(lookups.get(session_id))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(lookups.get(session_id)) for _ in range(10)]
    await asyncio.sleep(0)
    database.gate.set()

    results = await asyncio.gather(first, *later)

    assert all(result is not None and result.id == session_id for result in results)
    assert database.queries == [[session_id]]


async def test_a_lookup_after_the_last_one_ended_queries_again() -> None:
    session_id = uuid.uuid4()
    database = Database([session_id])
    lookups = BatchedLookup(database.look_up)
    await lookups.get(session_id)
    del database.rows[session_id]  # revoked and deleted meanwhile

    assert await lookups.get(session_id) is None
    assert len(database.queries) == 2


async def test_a_failed_query_fails_every_request_waiting_for_it() -> None:
    database = Database([])
    database.failure = StorageUnavailable()
    lookups = BatchedLookup(database.look_up)

    results = await asyncio.gather(
        *(lookups.get(uuid.uuid4()) for _ in range(5)), return_exceptions=True
    )

    assert all(isinstance(result, StorageUnavailable) for result in results)
    database.failure = None
    session_id = uuid.uuid4()
    database.rows[session_id] = session(session_id)
    assert await lookups.get(session_id) is not None


async def test_a_caller_that_gives_up_does_not_cancel_the_lookup_of_others() -> None:
    session_id = uuid.uuid4()
    database, lookups = stalled(session_id)
    impatient = asyncio.ensure_future(lookups.get(session_id))
    patient = asyncio.ensure_future(lookups.get(session_id))
    await asyncio.sleep(0)
    impatient.cancel()
    database.gate.set()

    found = await patient

    assert found is not None and found.id == session_id
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_batch_never_exceeds_the_largest_query() -> None:
    ids = [uuid.uuid4() for _ in range(MAX_LOOKUP_BATCH * 2 + 1)]
    database = Database(ids)
    lookups = BatchedLookup(database.look_up)

    found = await asyncio.gather(*(lookups.get(sid) for sid in ids))

    assert all(found)
    assert [len(query) for query in database.queries] == [MAX_LOOKUP_BATCH, MAX_LOOKUP_BATCH, 1]
