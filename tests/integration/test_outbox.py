"""Emails are queued with the change that causes them and survive SMTP outages and restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from bastion.adapters.mail import SmtpTransport
from bastion.adapters.sql import tables
from bastion.bootstrap import build
from bastion.core.clock import FrozenClock
from bastion.core.context import RequestContext
from bastion.mail.model import EmailMessage
from bastion.mail.worker import OutboxWorker
from tests.support import STRONG_PASSWORD, SmtpServer, free_port, make_settings, random_email

CONTEXT = RequestContext(ip="203.0.113.1", user_agent="tests")


async def test_a_message_survives_an_smtp_outage_and_a_restart(
    database_url: str, smtp: SmtpServer
) -> None:
    email = random_email("outage")
    clock = FrozenClock()
    down = build(make_settings(database_url, f"smtp://127.0.0.1:{free_port()}"), clock=clock)
    try:
        await down.tokens.ensure_key()
        await down.accounts.register(email, STRONG_PASSWORD, CONTEXT)
        assert await down.outbox_worker.deliver_due() >= 1
    finally:
        down.hasher.close()
        await down.engine.dispose()
    assert smtp.mailbox.received(email) == []

    clock.advance(timedelta(hours=1).total_seconds())
    restarted = build(make_settings(database_url, smtp.url), clock=clock)
    try:
        while await restarted.outbox_worker.deliver_due():
            pass
        message = await smtp.mailbox.wait_for(email, "confirm your email", timeout=5)
    finally:
        restarted.hasher.close()
        await restarted.engine.dispose()
    assert "/verify-email?token=" in str(message.get_body(preferencelist=("plain",)))


async def test_the_outbox_stores_message_bodies_encrypted(
    database_url: str, smtp: SmtpServer
) -> None:
    email = random_email("sealed")
    services = build(make_settings(database_url, smtp.url))
    try:
        await services.accounts.register(email, STRONG_PASSWORD, CONTEXT)
        async with services.engine.connect() as connection:
            query = select(tables.outbox.c.payload).where(tables.outbox.c.recipient == email)
            payload = (await connection.execute(query)).scalar_one()
    finally:
        services.hasher.close()
        await services.engine.dispose()
    assert b"verify-email" not in payload
    assert b"token" not in payload


async def test_a_failed_delivery_is_retried_later_not_dropped(
    database_url: str, smtp: SmtpServer
) -> None:
    email = random_email("retry")
    services = build(
        make_settings(database_url, f"smtp://127.0.0.1:{free_port()}"), clock=FrozenClock()
    )
    try:
        await services.accounts.register(email, STRONG_PASSWORD, CONTEXT)
        await services.outbox_worker.deliver_due()
        async with services.engine.connect() as connection:
            o = tables.outbox.c
            query = select(o.attempts, o.sent_at, o.failed_at, o.next_attempt_at, o.last_error)
            row = (await connection.execute(query.where(o.recipient == email))).one()
    finally:
        services.hasher.close()
        await services.engine.dispose()
    assert row.attempts == 1
    assert row.sent_at is None and row.failed_at is None
    assert row.next_attempt_at > services.clock.now()
    assert row.last_error


async def test_a_burst_of_messages_is_delivered_and_recorded_in_one_update(
    database_url: str, smtp: SmtpServer
) -> None:
    emails = [random_email("burst") for _ in range(5)]
    services = build(make_settings(database_url, smtp.url))
    updates: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE outbox") and "sent_at" in statement.split("WHERE")[0]:
            updates.append(statement)

    try:
        for email in emails:
            await services.accounts.register(email, STRONG_PASSWORD, CONTEXT)
        event.listen(services.engine.sync_engine, "before_cursor_execute", count)
        while await services.outbox_worker.deliver_due():
            pass
        async with services.engine.connect() as connection:
            o = tables.outbox.c
            query = select(o.sent_at, o.locked_until).where(o.recipient.in_(emails))
            rows = (await connection.execute(query)).all()
    finally:
        services.hasher.close()
        await services.engine.dispose()
    for email in emails:
        await smtp.mailbox.wait_for(email, "confirm your email", timeout=5)
    assert len(rows) == 5
    assert all(row.sent_at is not None and row.locked_until is None for row in rows)
    assert len(updates) == 1


class StopsItsWorkerAfterOneSend:
    """SMTP delivery that asks the outbox worker to stop once the first message is sent, as a
    SIGTERM arriving mid-batch would."""

    def __init__(self, smtp_url: str) -> None:
        self._smtp = SmtpTransport(smtp_url, timeout=10)
        self.worker: OutboxWorker | None = None

    async def send(self, message: EmailMessage, sender: str) -> None:
        await self._smtp.send(message, sender)
        assert self.worker is not None
        await self.worker.stop()


async def test_messages_claimed_but_untried_at_shutdown_are_sent_at_once_by_another_worker(
    database_url: str, smtp: SmtpServer
) -> None:
    emails = [random_email("handed-back") for _ in range(3)]
    clock = FrozenClock()
    transport = StopsItsWorkerAfterOneSend(smtp.url)
    stopping = build(make_settings(database_url, smtp.url), clock=clock, mail_transport=transport)
    transport.worker = stopping.outbox_worker
    other = build(make_settings(database_url, smtp.url), clock=clock)
    try:
        for email in emails:
            await stopping.accounts.register(email, STRONG_PASSWORD, CONTEXT)
        assert await stopping.outbox_worker.deliver_due() >= 3
        # Same instant: a lease still held would keep the other worker from the messages.
        while await other.outbox_worker.deliver_due():
            pass
        async with other.engine.connect() as connection:
            o = tables.outbox.c
            query = select(o.attempts, o.sent_at).where(o.recipient.in_(emails))
            rows = (await connection.execute(query)).all()
    finally:
        for services in (stopping, other):
            services.hasher.close()
            await services.engine.dispose()
    for email in emails:
        await smtp.mailbox.wait_for(email, "confirm your email", timeout=5)
    assert all(row.sent_at is not None for row in rows)
    assert sorted(row.attempts for row in rows) == [1, 1, 1]
