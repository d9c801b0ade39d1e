"""The unit of work: all or nothing, everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bastion.accounts.errors import SecurityStateChanged
from bastion.accounts.model import User
from bastion.adapters.sql.database import create_engine
from bastion.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from bastion.audit.model import AuditEvent, EventType, event
from bastion.core.context import RequestContext, SecurityStamp
from bastion.sessions.model import Session
from bastion.storage import UnitOfWorkFactory
from tests.contracts.conftest import SEALER, empty_tables
from tests.contracts.rows import a_session, a_user, later, stored_user
from tests.fakes import FakeUnitOfWorkFactory


class Observer:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def recorded(self, event: AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture
async def observed(storage: str) -> AsyncIterator[tuple[UnitOfWorkFactory, Observer]]:
    """A unit-of-work factory that tells an observer about committed audit events."""
    observer = Observer()
    if storage == "memory":
        yield FakeUnitOfWorkFactory(audit_observer=observer), observer
        return
    engine = create_engine(storage)
    try:
        await empty_tables(engine)
        yield SqlUnitOfWorkFactory(engine, SEALER, audit_observer=observer), observer
    finally:
        await engine.dispose()


async def test_what_a_unit_of_work_commits_the_next_one_sees(uow: UnitOfWorkFactory) -> None:
    user = a_user()
    session = a_session(user.id)
    async with uow() as work:
        await work.users.add(user)
        await work.sessions.add(session)
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) == user
        assert await work.sessions.get(session.id) == session


async def test_leaving_without_commit_keeps_nothing(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    async with uow() as work:
        await work.sessions.add(a_session(user.id))
        await work.sessions.revoke(user.id, later(1), "logout")
        await work.users.delete(user.id)
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) == user
        assert await work.sessions.list_active(user.id, later(2)) == []


async def test_an_error_inside_keeps_nothing(uow: UnitOfWorkFactory) -> None:
    user = a_user()
    with pytest.raises(LookupError):
        async with uow() as work:
            await work.users.add(user)
            await work.users.get(user.id)
            raise LookupError("the use case gave up")
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) is None


async def test_a_committed_unit_of_work_cannot_be_used_again(uow: UnitOfWorkFactory) -> None:
    async with uow() as work:
        await work.users.add(a_user())
        await work.commit()
        with pytest.raises(RuntimeError):
            await work.commit()


async def test_the_observer_hears_of_audit_events_once_they_are_committed(
    observed: tuple[UnitOfWorkFactory, Observer],
) -> None:
    uow, observer = observed
    context = RequestContext()
    dropped = event(EventType.LOGOUT, later(0), context)
    kept = event(EventType.LOGIN_SUCCEEDED, later(1), context)
    async with uow() as work:
        await work.audit.record(dropped)
    async with uow() as work:
        await work.audit.record(kept)
        assert observer.events == []
        await work.commit()
    assert observer.events == [kept]


REFRESH_HASH = "f" * 64


async def start_session(
    uow: UnitOfWorkFactory, stamp: SecurityStamp, session: Session, *, read_first: bool = False
) -> None:
    """What a log-in writes, on the account's state as its password check saw it."""
    async with uow() as work:
        work.commit_only_while(stamp)
        await work.sessions.add(session)
        await work.sessions.add_refresh_token(REFRESH_HASH, session.id, later(0))
        await work.audit.record(
            event(EventType.LOGIN_SUCCEEDED, later(0), RequestContext(), session.user_id)
        )
        if read_first:
            await work.users.get(session.user_id)
        await work.commit()


async def nothing_of(uow: UnitOfWorkFactory, user: User, session: Session) -> bool:
    async with uow(read_only=True) as work:
        return (
            await work.sessions.get(session.id) is None
            and await work.sessions.refresh_token_session(REFRESH_HASH) is None
            and await work.audit.list(user_id=user.id) == []
        )


@pytest.mark.parametrize("read_first", [False, True], ids=["inserts-only", "read-first"])
async def test_writes_on_a_security_state_the_account_still_has_are_committed(
    uow: UnitOfWorkFactory, read_first: bool
) -> None:
    user = await stored_user(uow)
    session = a_session(user.id)

    await start_session(uow, user.security_stamp, session, read_first=read_first)

    async with uow(read_only=True) as work:
        assert await work.sessions.get(session.id) == session
        assert await work.sessions.refresh_token_session(REFRESH_HASH) == session.id
        assert len(await work.audit.list(user_id=user.id)) == 1


@pytest.mark.parametrize("read_first", [False, True], ids=["inserts-only", "read-first"])
async def test_writes_on_a_security_state_the_account_left_are_refused_whole(
    uow: UnitOfWorkFactory, read_first: bool
) -> None:
    user = await stored_user(uow)
    async with uow() as work:
        await work.users.update(user.with_active(False, later(1)))
        await work.commit()
    session = a_session(user.id)

    with pytest.raises(SecurityStateChanged):
        await start_session(uow, user.security_stamp, session, read_first=read_first)

    assert await nothing_of(uow, user, session)


async def test_writes_on_the_security_state_of_a_deleted_account_are_refused_whole(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    async with uow() as work:
        await work.users.delete(user.id)
        await work.commit()
    session = a_session(user.id)

    with pytest.raises(SecurityStateChanged):
        await start_session(uow, user.security_stamp, session)

    assert await nothing_of(uow, user, session)


async def test_writes_on_a_security_state_wait_for_a_change_under_way_and_then_are_refused(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = a_session(user.id)
    async with uow() as change:
        current = await change.users.get_for_update(user.id)
        assert current is not None
        await change.users.update(current.with_password("$argon2id$new", later(1)))
        starting = asyncio.create_task(start_session(uow, user.security_stamp, session))
        await asyncio.sleep(0.2)
        assert not starting.done()
        await change.commit()

    with pytest.raises(SecurityStateChanged):
        await starting
    assert await nothing_of(uow, user, session)
