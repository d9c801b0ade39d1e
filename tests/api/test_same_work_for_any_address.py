"""Forgot-password and resend do the same work whether or not the address has an account that
the email is for: the same SQL statements, so that no timing tells one from the other. Their
medians are compared in `make bench` (the enumeration rows); here, the statements."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from bastion.bootstrap import Services
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    audit_rows,
    forgot_password,
    random_email,
    register,
    user_id_of,
    verified_user,
)

RESEND = "/api/v1/auth/verify-email/resend"
_recording: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "recording", default=None
)


@contextmanager
def statements_recorded(services: Services) -> Iterator[None]:
    """Record the statements sent on behalf of the current task (not the outbox worker's, which
    runs in a task of its own)."""

    def record(*args: Any) -> None:
        statements = _recording.get()
        if statements is not None:
            statements.append(args[2])

    engine = services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def statements_of(request: Awaitable[httpx.Response]) -> list[str]:
    statements: list[str] = []
    token = _recording.set(statements)
    try:
        assert (await request).status_code == 202
    finally:
        _recording.reset(token)
    return statements


async def test_forgot_password_sends_the_same_statements_whether_or_not_the_account_exists(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    known = await verified_user(client, smtp.mailbox, "known")
    unknown = random_email("unknown")
    with statements_recorded(services):
        for_known = await statements_of(forgot_password(client, known))
        for_unknown = await statements_of(forgot_password(client, unknown))

    assert for_known == for_unknown
    assert any("INSERT" in statement for statement in for_known)
    await smtp.mailbox.wait_for(known, "reset your password")
    assert await smtp.mailbox.settled(unknown) == []
    requested = [row["user_id"] for row in await audit_rows(services, "reset_requested")][-2:]
    assert requested == [await user_id_of(services, known), None]


async def test_resend_sends_the_same_statements_whatever_the_account(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    unverified = random_email("unverified")
    assert (await register(client, unverified, STRONG_PASSWORD)).status_code == 202
    verified = await verified_user(client, smtp.mailbox, "verified")
    addresses = [unverified, verified, random_email("unknown")]
    with statements_recorded(services):
        sent = [
            await statements_of(client.post(RESEND, json={"email": address}))
            for address in addresses
        ]

    assert sent[0] == sent[1] == sent[2]
    assert any("INSERT" in statement for statement in sent[0])
    assert len(await smtp.mailbox.settled(unverified, expected=2)) == 2
    assert len(await smtp.mailbox.settled(verified, expected=1, quiet=0)) == 1
    requested = [row["user_id"] for row in await audit_rows(services, "verification_requested")]
    assert requested[-3:] == [
        await user_id_of(services, unverified),
        await user_id_of(services, verified),
        None,
    ]
