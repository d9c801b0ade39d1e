"""AuditLog: the same behaviour everywhere."""

from __future__ import annotations

import uuid

from bastion.audit.model import ERASED, AuditEvent, EventType, event
from bastion.core.context import RequestContext
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import later

CONTEXT = RequestContext(ip="2001:db8::7", user_agent="contract tests")


async def recorded(uow: UnitOfWorkFactory, *events: AuditEvent) -> list[AuditEvent]:
    """The events, each recorded in a unit of work of its own, as the log lists them back
    (oldest first). Events of one unit of work have no order among themselves: PostgreSQL
    inserts them in one statement."""
    for item in events:
        async with uow() as work:
            await work.audit.record(item)
            await work.commit()
    async with uow(read_only=True) as work:
        return list(reversed(await work.audit.list(limit=len(events))))


async def test_events_are_listed_newest_first_as_recorded(uow: UnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    first = event(EventType.LOGIN_FAILED, later(0), CONTEXT, user_id, reason="wrong_password")
    second = event(EventType.LOGIN_SUCCEEDED, later(1), CONTEXT, user_id, remember_me=True)
    listed = await recorded(uow, first, second)
    assert [item.id for item in listed] == sorted(item.id or 0 for item in listed)
    assert [{**vars_of(item), "id": None} for item in listed] == [vars_of(first), vars_of(second)]


async def test_events_are_filtered_by_user_and_type_and_paged_by_id(
    uow: UnitOfWorkFactory,
) -> None:
    user_id = uuid.uuid4()
    ours = [event(EventType.REFRESH, later(n), CONTEXT, user_id, n=n) for n in range(5)]
    noise = [
        event(EventType.LOGOUT, later(9), CONTEXT, user_id),
        event(EventType.REFRESH, later(9), CONTEXT, uuid.uuid4()),
        event(EventType.RESET_REQUESTED, later(9), CONTEXT),
    ]
    await recorded(uow, *ours[:3], *noise, *ours[3:])
    async with uow(read_only=True) as work:
        page = await work.audit.list(user_id=user_id, type="refresh", limit=3)
        rest = await work.audit.list(user_id=user_id, type="refresh", before=page[-1].id)
        logouts = await work.audit.list(user_id=user_id, type="logout")
    assert [item.details["n"] for item in page + rest] == [4, 3, 2, 1, 0]
    assert [item.type for item in logouts] == [EventType.LOGOUT]


async def test_events_recorded_together_are_all_kept(uow: UnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    together = [event(EventType.ROLE_CHANGED, later(0), CONTEXT, user_id, n=n) for n in range(3)]
    async with uow() as work:
        for item in together:
            await work.audit.record(item)
        await work.commit()
    async with uow(read_only=True) as work:
        listed = await work.audit.list(user_id=user_id)
    assert sorted(item.details["n"] for item in listed) == [0, 1, 2]


async def test_a_long_user_agent_is_cut_to_512_characters(uow: UnitOfWorkFactory) -> None:
    long = RequestContext(ip=None, user_agent="x" * 600)
    [listed] = await recorded(uow, event(EventType.REGISTERED, later(0), long, uuid.uuid4()))
    assert listed.user_agent == "x" * 512


async def test_erasing_an_address_scrubs_it_wherever_it_appears(uow: UnitOfWorkFactory) -> None:
    address = f"Ëve-{uuid.uuid4().hex[:8]}@Example.com"
    mentions = event(
        EventType.USER_DELETED,
        later(0),
        CONTEXT,
        uuid.uuid4(),
        email=address.lower(),
        nested={"seen": [f"by {address.upper()}", 3]},
    )
    untouched = event(EventType.USER_DELETED, later(1), CONTEXT, uuid.uuid4(), email="x@y.z")
    await recorded(uow, mentions, untouched)
    async with uow() as work:
        assert await work.audit.erase(address) == 1
        await work.commit()
    async with uow(read_only=True) as work:
        kept, scrubbed = await work.audit.list(type="user_deleted", limit=2)
    assert scrubbed.details == {"email": ERASED, "nested": {"seen": [f"by {ERASED}", 3]}}
    assert kept.details == untouched.details


def vars_of(item: AuditEvent) -> dict[str, object]:
    return {
        "id": item.id,
        "type": item.type,
        "occurred_at": item.occurred_at,
        "user_id": item.user_id,
        "ip": item.ip,
        "user_agent": item.user_agent,
        "details": item.details,
    }
