"""PurgeableRows: the retention purge deletes the same rows everywhere, and only those.

Each kind deletes rows that ended strictly before the cutoff, at most ``limit`` at a time.
"""

from __future__ import annotations

import uuid

import pytest

from bastion.audit.model import AuditEvent, EventType
from bastion.mail.model import EmailMessage
from bastion.retention.model import Purgeable
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import a_token, later, stored_session, stored_user
from tests.contracts.test_one_time_token_repository import KINDS, tokens_of
from tests.support import random_email


async def purge(uow: UnitOfWorkFactory, kind: Purgeable, before: float, limit: int = 100) -> int:
    async with uow(single_statement=True) as work:
        deleted = await work.purgeable.delete(kind, later(before), limit)
        await work.commit()
    return deleted


async def test_audit_events_that_occurred_before_the_cutoff_go_at_most_limit_at_a_time(
    uow: UnitOfWorkFactory,
) -> None:
    for at in (0, 1, 2, 10):
        async with uow() as work:
            await work.audit.record(AuditEvent(EventType.LOGIN_SUCCEEDED, later(at)))
            await work.commit()
    assert await purge(uow, Purgeable.AUDIT_EVENTS, before=10, limit=2) == 2
    assert await purge(uow, Purgeable.AUDIT_EVENTS, before=10, limit=2) == 1
    assert await purge(uow, Purgeable.AUDIT_EVENTS, before=10, limit=2) == 0
    async with uow(read_only=True) as work:
        assert [e.occurred_at for e in await work.audit.list()] == [later(10)]


async def test_the_oldest_rows_go_first(uow: UnitOfWorkFactory) -> None:
    for at in (2, 0, 1):
        async with uow() as work:
            await work.audit.record(AuditEvent(EventType.LOGIN_SUCCEEDED, later(at)))
            await work.commit()
    assert await purge(uow, Purgeable.AUDIT_EVENTS, before=10, limit=1) == 1
    async with uow(read_only=True) as work:
        assert sorted(e.occurred_at for e in await work.audit.list()) == [later(1), later(2)]


async def test_sessions_that_expired_before_the_cutoff_go_with_their_refresh_tokens(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    expired = await stored_session(uow, user, created=-7200, lifetime=3600)
    at_cutoff = await stored_session(uow, user, created=-3600, lifetime=3600)
    live = await stored_session(uow, user)
    async with uow() as work:
        for n, session in enumerate((expired, at_cutoff, live)):
            await work.sessions.add_refresh_token(str(n) * 64, session.id, later(-10))
        await work.commit()
    assert await purge(uow, Purgeable.EXPIRED_SESSIONS, before=0) == 1
    async with uow(read_only=True) as work:
        assert await work.sessions.get(expired.id) is None
        assert await work.sessions.refresh_token_session("0" * 64) is None
        assert await work.sessions.refresh_token_session("1" * 64) == at_cutoff.id
        assert await work.sessions.refresh_token_session("2" * 64) == live.id


async def test_sessions_revoked_before_the_cutoff_go_though_unexpired(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    early, at_cutoff, live = [await stored_session(uow, user) for _ in range(3)]
    for session, at in ((early, 10), (at_cutoff, 20)):
        async with uow() as work:
            await work.sessions.revoke(user.id, later(at), "logout", only=session.id)
            await work.sessions.add_refresh_token(uuid.uuid4().hex * 2, session.id, later(at))
            await work.commit()
    assert await purge(uow, Purgeable.REVOKED_SESSIONS, before=20) == 1
    assert await purge(uow, Purgeable.EXPIRED_SESSIONS, before=20) == 0
    async with uow(read_only=True) as work:
        remaining = await work.sessions.get_many([early.id, at_cutoff.id, live.id])
    assert sorted(s.id for s in remaining) == sorted([at_cutoff.id, live.id])


@pytest.mark.parametrize("kind", KINDS)
async def test_one_time_tokens_that_expired_before_the_cutoff_go(
    uow: UnitOfWorkFactory, kind: str
) -> None:
    user = await stored_user(uow)
    expired, at_cutoff = a_token(user.id, lifetime=10), a_token(user.id, lifetime=20)
    async with uow() as work:
        for token in (expired, at_cutoff):
            await tokens_of(work, kind).add(token)
        await work.commit()
    assert await purge(uow, Purgeable(kind), before=20) == 1
    async with uow(read_only=True) as work:
        assert await tokens_of(work, kind).get(expired.token_hash) is None
        assert await tokens_of(work, kind).get(at_cutoff.token_hash) == at_cutoff


async def test_sent_and_failed_emails_go_after_their_cutoffs_and_waiting_ones_never(
    uow: UnitOfWorkFactory,
) -> None:
    for _ in range(5):
        async with uow() as work:
            await work.outbox.add(
                EmailMessage(random_email("purge"), "Subject", "text", "<p>html</p>", "test"),
                later(0),
            )
            await work.commit()
    async with uow() as work:
        sent_early, sent_late, failed, retried, _ = await work.outbox.claim_due(
            later(0), 10, later(120)
        )
        await work.outbox.mark_sent([sent_early.id], later(10))
        await work.outbox.mark_sent([sent_late.id], later(30))
        await work.outbox.mark_failed(failed.id, later(10), "SMTPRecipientsRefused: no")
        await work.outbox.mark_retry(retried.id, later(15), "SMTPServerDisconnected: gone")
        await work.commit()
    assert await purge(uow, Purgeable.SENT_EMAILS, before=20) == 1
    assert await purge(uow, Purgeable.FAILED_EMAILS, before=20) == 1
    assert await purge(uow, Purgeable.SENT_EMAILS, before=10_000) == 1
    assert await purge(uow, Purgeable.FAILED_EMAILS, before=10_000) == 0
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 2
