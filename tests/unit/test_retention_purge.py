"""The retention purge over in-memory storage with a frozen clock: each kind of row goes one
second after its window and not before, in batches, and the audit trail says what went.

``tests/contracts/test_purgeable_rows.py`` holds the fake to the SQL adapter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bastion.audit.model import AuditEvent, EventType
from bastion.core.clock import FrozenClock
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import signing_key_revoked
from bastion.mail.model import EmailMessage
from bastion.owners.model import EmailChange
from bastion.retention.model import Purgeable, RetentionRules
from bastion.retention.service import REST_PER_BATCH, RetentionPurge
from bastion.sessions.model import new_session
from tests.support import random_email
from tests.unit.flows import World, world

DAY = 86400


async def an_audit_event(w: World) -> None:
    async with w.store() as uow:
        await uow.audit.record(AuditEvent(EventType.LOGIN_SUCCEEDED, w.clock.now()))
        await uow.commit()


async def a_session_ending_now(w: World, *, revoked: bool) -> None:
    user = await w.user()
    lifetime = timedelta(days=365 if revoked else 0)
    session = new_session(
        user.id, w.clock.now(), lifetime, remember_me=True, ip=None, user_agent=None
    )
    if revoked:
        session = replace(session, revoked_at=w.clock.now(), revoke_reason="logout")
    async with w.store() as uow:
        await uow.sessions.add(session)
        await uow.commit()


async def a_token_expiring_now(w: World, *, reset: bool = False, invite: bool = False) -> None:
    user = await w.user()
    now = w.clock.now()
    token = OneTimeToken(hash_token(new_token()), user.id, now - timedelta(hours=1), now)
    async with w.store() as uow:
        if invite:
            await uow.invitation_tokens.add(token)
        else:
            await (uow.reset_tokens if reset else uow.verification_tokens).add(token)
        await uow.commit()


async def an_email_change_expiring_now(w: World) -> None:
    user = await w.user()
    now = w.clock.now()
    change = EmailChange(
        hash_token(new_token()), user.id, random_email(), now - timedelta(hours=1), now
    )
    async with w.store() as uow:
        await uow.email_changes.add(change)
        await uow.commit()


async def an_email_done_now(w: World, *, sent: bool) -> None:
    now = w.clock.now()
    async with w.store() as uow:
        await uow.outbox.add(EmailMessage(random_email(), "Subject", "text", "html", "test"), now)
        [queued] = await uow.outbox.claim_due(now, 1, now + timedelta(minutes=2))
        if sent:
            await uow.outbox.mark_sent([queued.id], now)
        else:
            await uow.outbox.mark_failed(queued.id, now, "SMTPRecipientsRefused: no")
        await uow.commit()


async def a_stream_event(w: World) -> None:
    async with w.store() as uow:
        await uow.events.publish(signing_key_revoked("k1", w.clock.now()))
        await uow.commit()


def remaining(w: World, kind: Purgeable) -> int:
    t = w.store.tables
    return {
        Purgeable.AUDIT_EVENTS: sum(
            1 for e in t.audit.values() if e.type is not EventType.RETENTION_PURGED
        ),
        Purgeable.EXPIRED_SESSIONS: len(t.sessions),
        Purgeable.REVOKED_SESSIONS: len(t.sessions),
        Purgeable.VERIFICATION_TOKENS: len(t.verification_tokens),
        Purgeable.RESET_TOKENS: len(t.reset_tokens),
        Purgeable.INVITATION_TOKENS: len(t.invitation_tokens),
        Purgeable.EMAIL_CHANGE_TOKENS: len(t.email_changes),
        Purgeable.SENT_EMAILS: sum(1 for row in t.outbox.values() if row.sent_at),
        Purgeable.FAILED_EMAILS: sum(1 for row in t.outbox.values() if row.failed_at),
        Purgeable.STREAM_EVENTS: len(t.events),
    }[kind]


ENDING_NOW: dict[Purgeable, Callable[[World], Awaitable[None]]] = {
    Purgeable.AUDIT_EVENTS: an_audit_event,
    Purgeable.EXPIRED_SESSIONS: lambda w: a_session_ending_now(w, revoked=False),
    Purgeable.REVOKED_SESSIONS: lambda w: a_session_ending_now(w, revoked=True),
    Purgeable.VERIFICATION_TOKENS: lambda w: a_token_expiring_now(w, reset=False),
    Purgeable.RESET_TOKENS: lambda w: a_token_expiring_now(w, reset=True),
    Purgeable.INVITATION_TOKENS: lambda w: a_token_expiring_now(w, invite=True),
    Purgeable.EMAIL_CHANGE_TOKENS: an_email_change_expiring_now,
    Purgeable.SENT_EMAILS: lambda w: an_email_done_now(w, sent=True),
    Purgeable.FAILED_EMAILS: lambda w: an_email_done_now(w, sent=False),
    Purgeable.STREAM_EVENTS: a_stream_event,
}
# The defaults: AUDIT_RETENTION_DAYS=90, SESSION_RETENTION_DAYS=30, and the fixed windows.
WINDOW_DAYS = {
    Purgeable.AUDIT_EVENTS: 90,
    Purgeable.EXPIRED_SESSIONS: 30,
    Purgeable.REVOKED_SESSIONS: 30,
    Purgeable.VERIFICATION_TOKENS: 7,
    Purgeable.RESET_TOKENS: 7,
    Purgeable.INVITATION_TOKENS: 7,
    Purgeable.EMAIL_CHANGE_TOKENS: 7,
    Purgeable.SENT_EMAILS: 1,
    Purgeable.FAILED_EMAILS: 7,
    Purgeable.STREAM_EVENTS: 7,  # EVENT_RETENTION's default, 604800 s
}


@pytest.mark.parametrize("kind", list(Purgeable))
async def test_a_row_goes_one_second_after_its_window_and_not_before(kind: Purgeable) -> None:
    async with world() as w:
        await ENDING_NOW[kind](w)
        w.clock.advance(WINDOW_DAYS[kind] * DAY)
        kept = await w.services.retention.purge()
        assert kept.deleted[kind] == 0 and remaining(w, kind) == 1
        w.clock.advance(1)
        purged = await w.services.retention.purge()
        assert purged.deleted[kind] == 1 and remaining(w, kind) == 0


async def test_the_purge_goes_in_batches_until_nothing_old_is_left() -> None:
    async with world(purge_batch_size=2) as w:
        for _ in range(5):
            await an_audit_event(w)
        w.clock.advance(91 * DAY)
        await an_audit_event(w)
        report = await w.services.retention.purge()
        assert report.deleted[Purgeable.AUDIT_EVENTS] == 5
        assert [e.type for e in w.store.tables.audit.values()] == [
            EventType.LOGIN_SUCCEEDED,
            EventType.RETENTION_PURGED,
        ]


BATCH_SECONDS = 0.05


class SlowRows:
    """Rows whose every batch takes BATCH_SECONDS; two full batches of audit events, then none."""

    def __init__(self) -> None:
        self.full_batches: list[tuple[float, float]] = []
        self.purgeable = self
        self.audit = self

    def __call__(self, *, single_statement: bool = False) -> SlowRows:
        return self

    async def __aenter__(self) -> SlowRows:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def record(self, event: AuditEvent) -> None:
        return None

    async def delete(self, kind: Purgeable, before: datetime, limit: int) -> int:
        started = time.monotonic()
        await asyncio.sleep(BATCH_SECONDS)
        if kind is not Purgeable.AUDIT_EVENTS or len(self.full_batches) == 2:
            return 0
        self.full_batches.append((started, time.monotonic()))
        return limit


async def test_after_each_batch_the_purge_rests_three_times_as_long_as_the_batch_took() -> None:
    rows = SlowRows()
    purge = RetentionPurge(rows, FrozenClock(), RetentionRules(90, 30), batch_size=10)
    report = await purge.purge()
    assert report.deleted[Purgeable.AUDIT_EVENTS] == 20
    (_, first_ended), (second_started, _) = rows.full_batches
    assert second_started - first_ended >= REST_PER_BATCH * BATCH_SECONDS


async def test_a_purge_records_what_it_deleted_in_the_audit_trail_and_nothing_else_does() -> None:
    async with world() as w:
        await a_session_ending_now(w, revoked=True)
        w.clock.advance(31 * DAY)
        await w.services.retention.purge()
        [purged] = w.events("retention_purged")
        # The session's user's creation told the event stream twice (registered, verified).
        assert purged.details == {"revoked_sessions": 1, "stream_events": 2}
        await w.services.retention.purge()
        assert len(w.events("retention_purged")) == 1


async def test_zero_days_keeps_audit_events_and_ended_sessions_forever() -> None:
    async with world(audit_retention_days=0, session_retention_days=0) as w:
        await an_audit_event(w)
        await a_session_ending_now(w, revoked=True)
        await a_session_ending_now(w, revoked=False)
        w.clock.advance(3650 * DAY)
        report = await w.services.retention.purge()
        assert not {Purgeable.AUDIT_EVENTS, Purgeable.EXPIRED_SESSIONS} & report.deleted.keys()
        assert len(w.store.tables.sessions) == 2
        assert any(e.type is EventType.LOGIN_SUCCEEDED for e in w.store.tables.audit.values())


async def test_a_live_session_and_its_refresh_tokens_are_never_purged() -> None:
    async with world() as w:
        user = await w.user()
        logged_in = await w.log_in(user.email, remember_me=True)
        w.clock.advance(29 * DAY)  # the remembered session lasts 30 days
        await w.services.retention.purge()
        assert logged_in.tokens.session.id in w.store.tables.sessions
        assert {t.session_id for t in w.store.tables.refresh_tokens.values()} == {
            logged_in.tokens.session.id
        }
