"""Inserts nobody reads back wait for the next statement or the commit, and keep the unit of
work's all-or-nothing promise on both databases."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from bastion.accounts.errors import EmailTaken
from bastion.accounts.model import Role, User
from bastion.audit.model import EventType, event
from bastion.bootstrap import Services, build
from bastion.core.context import RequestContext
from bastion.sessions.model import Session, new_session
from tests.support import STRONG_PASSWORD, SmtpServer, make_settings, random_email

CONTEXT = RequestContext(ip="203.0.113.9", user_agent="tests")


@pytest.fixture
async def services(database_url: str, smtp: SmtpServer) -> AsyncIterator[Services]:
    built = build(make_settings(database_url, smtp.url))
    try:
        yield built
    finally:
        built.hasher.close()
        await built.engine.dispose()


async def a_user(services: Services) -> User:
    return await services.accounts.create_user(random_email("tx"), STRONG_PASSWORD, Role.USER)


def a_session(services: Services, user_id: uuid.UUID) -> Session:
    return new_session(
        user_id,
        services.clock.now(),
        timedelta(hours=1),
        remember_me=True,
        ip=CONTEXT.ip,
        user_agent=CONTEXT.user_agent,
    )


async def events_of(services: Services, user_id: uuid.UUID) -> list[EventType]:
    async with services.uow(read_only=True) as uow:
        return [e.type for e in await uow.audit.list(user_id=user_id)]


async def test_inserts_alone_are_committed_together(services: Services) -> None:
    user = await a_user(services)
    session = a_session(services, user.id)
    now = services.clock.now()

    async with services.uow() as uow:
        await uow.sessions.add(session)
        await uow.sessions.add_refresh_token("tx-" + uuid.uuid4().hex, session.id, now)
        await uow.audit.record(event(EventType.LOGIN_SUCCEEDED, now, CONTEXT, user.id))
        await uow.commit()

    async with services.uow(read_only=True) as uow:
        assert await uow.sessions.get(session.id) == session
    assert await events_of(services, user.id) == [EventType.LOGIN_SUCCEEDED]


async def test_one_failing_insert_commits_none_of_the_others(services: Services) -> None:
    user = await a_user(services)
    orphan = a_session(services, uuid.uuid4())  # its user does not exist
    now = services.clock.now()

    with pytest.raises(IntegrityError):
        async with services.uow() as uow:
            await uow.audit.record(event(EventType.LOGIN_SUCCEEDED, now, CONTEXT, user.id))
            await uow.sessions.add(orphan)
            await uow.commit()

    assert await events_of(services, user.id) == []


async def test_waiting_inserts_are_seen_by_the_next_statement_and_lost_without_commit(
    services: Services,
) -> None:
    user = await a_user(services)
    session = a_session(services, user.id)

    async with services.uow() as uow:
        await uow.sessions.add(session)
        assert await uow.sessions.get(session.id) == session

    async with services.uow(read_only=True) as uow:
        assert await uow.sessions.get(session.id) is None


async def test_a_committed_unit_of_work_takes_no_further_writes(services: Services) -> None:
    user = await a_user(services)

    async with services.uow() as uow:
        await uow.sessions.add(a_session(services, user.id))
        await uow.commit()
        with pytest.raises(RuntimeError, match="committed"):
            await uow.sessions.add(a_session(services, user.id))


async def test_a_second_account_with_an_email_fails_at_the_commit_and_writes_nothing(
    services: Services,
) -> None:
    user = await a_user(services)
    twin = dataclasses.replace(user, id=uuid.uuid4())
    now = services.clock.now()

    with pytest.raises(EmailTaken):
        async with services.uow() as uow:
            await uow.users.add(twin)
            await uow.audit.record(event(EventType.REGISTERED, now, CONTEXT, twin.id))
            await uow.commit()

    assert await events_of(services, twin.id) == []
    async with services.uow(read_only=True) as uow:
        assert await uow.users.get(twin.id) is None


async def test_a_single_statement_unit_of_work_refuses_a_second_statement(
    services: Services,
) -> None:
    user = await a_user(services)

    async with services.uow(single_statement=True) as uow:
        assert await uow.users.get(user.id) == user
        with pytest.raises(RuntimeError, match="second statement"):
            await uow.users.get(user.id)
