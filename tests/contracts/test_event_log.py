"""EventLog: events published in a unit of work appear at its commit, in id order, never before,
and never when it rolls back. Events of one commit come in no particular order among themselves
(PostgreSQL runs the inserts of one statement in no set order)."""

from __future__ import annotations

import uuid

from bastion.events.model import (
    StreamEventType,
    sessions_revoked,
    signing_key_revoked,
    user_event,
)
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import later


async def newest(uow: UnitOfWorkFactory) -> int:
    async with uow(read_only=True) as work:
        return await work.events.newest_id()


async def test_published_events_come_back_after_the_cursor_in_order_with_their_fields(
    uow: UnitOfWorkFactory,
) -> None:
    start = await newest(uow)
    user_id, sid = uuid.uuid4(), uuid.uuid4()
    async with uow() as work:
        await work.events.publish(
            user_event(StreamEventType.PASSWORD_RESET, user_id, later(0)),
            *sessions_revoked(user_id, [sid], later(0)),
        )
        await work.events.publish(signing_key_revoked("kid-1", later(1)))
        await work.commit()
    async with uow(read_only=True) as work:
        events = await work.events.after(start, 10)
        assert await work.events.newest_id() == events[-1].id
        later_ones = await work.events.after(events[0].id or 0, 10)
    by_type = {e.type: e for e in events}
    assert set(by_type) == {
        StreamEventType.PASSWORD_RESET,
        StreamEventType.SESSION_REVOKED,
        StreamEventType.SIGNING_KEY_REVOKED,
    }
    ids = [e.id or 0 for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3 and ids[0] > start
    revoked = by_type[StreamEventType.SESSION_REVOKED]
    assert revoked.fields == {"sid": str(sid), "user_id": str(user_id)}
    key = by_type[StreamEventType.SIGNING_KEY_REVOKED]
    assert key.fields == {"kid": "kid-1"} and key.occurred_at == later(1)
    assert later_ones == events[1:]


async def test_events_of_a_unit_of_work_that_does_not_commit_never_appear(
    uow: UnitOfWorkFactory,
) -> None:
    start = await newest(uow)
    async with uow() as work:
        await work.events.publish(user_event(StreamEventType.USER_DELETED, uuid.uuid4(), later(0)))
    async with uow(read_only=True) as work:
        assert await work.events.after(start, 10) == []


async def test_after_returns_at_most_limit_events(uow: UnitOfWorkFactory) -> None:
    start = await newest(uow)
    async with uow() as work:
        await work.events.publish(
            *(user_event(StreamEventType.MFA_CHANGED, uuid.uuid4(), later(n)) for n in range(5))
        )
        await work.commit()
    async with uow(read_only=True) as work:
        assert len(await work.events.after(start, 2)) == 2


async def test_a_position_tells_the_bounds_and_when_its_event_occurred(
    uow: UnitOfWorkFactory,
) -> None:
    async with uow() as work:
        await work.events.publish(
            *(user_event(StreamEventType.USER_VERIFIED, uuid.uuid4(), later(n)) for n in range(3))
        )
        await work.commit()
    async with uow(read_only=True) as work:
        newest_id = await work.events.newest_id()
        found = await work.events.position(newest_id - 1)
        beyond = await work.events.position(newest_id + 5)
    assert found.newest == newest_id and found.occurred_at == later(1)
    assert found.oldest is not None and found.oldest <= newest_id - 2
    assert beyond.occurred_at is None
