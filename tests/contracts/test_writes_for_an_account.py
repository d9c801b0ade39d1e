"""Writes made for the account at an address (a token, a queued email, an audit event): the
same behaviour everywhere, whether they go together in one unit of work or each alone."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from bastion.audit.model import EventType, event
from bastion.core.account_at import AccountAt
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.secrets import hash_token, new_token
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from tests.contracts.rows import NOW, a_user, later, stored
from tests.contracts.test_audit_log import CONTEXT
from tests.contracts.test_outbox import a_message, claim
from tests.support import random_email

Write = Callable[[UnitOfWork], Awaitable[None]]
# What was stored: the token, the recipients of the queued emails, the event's user.
Written = tuple[OneTimeToken | None, list[str], uuid.UUID | None]


async def write_for(uow: UnitOfWorkFactory, account: AccountAt, *, together: bool) -> Written:
    """A reset token, an email and an event written for ``account``, in one unit of work or
    each in its own."""
    token_hash = hash_token(new_token())
    reset_requested = event(EventType.RESET_REQUESTED, NOW, CONTEXT)

    async def token(work: UnitOfWork) -> None:
        await work.reset_tokens.add_for(account, token_hash, NOW, later(3600))

    async def email(work: UnitOfWork) -> None:
        await work.outbox.add_for(account, a_message(account.email), NOW)

    async def audit(work: UnitOfWork) -> None:
        await work.audit.record_for(account, reset_requested)

    writes: list[Write] = [token, email, audit]
    for batch in [writes] if together else [[write] for write in writes]:
        async with uow() as work:
            for write in batch:
                await write(work)
            await work.commit()
    async with uow(read_only=True) as work:
        stored_token = await work.reset_tokens.get(token_hash)
        [recorded] = await work.audit.list(type=EventType.RESET_REQUESTED.value)
    recipients = [message.recipient for message in await claim(uow, at=0)]
    return stored_token, recipients, recorded.user_id


@pytest.mark.parametrize("together", [True, False], ids=["together", "alone"])
async def test_an_account_at_the_address_gets_the_token_the_email_and_the_event(
    uow: UnitOfWorkFactory, together: bool
) -> None:
    user = a_user()
    await stored(uow, user)
    token, recipients, event_user = await write_for(uow, AccountAt(user.email), together=together)
    assert token is not None
    assert token == OneTimeToken(token.token_hash, user.id, NOW, later(3600))
    assert recipients == [user.email]
    assert event_user == user.id


@pytest.mark.parametrize("together", [True, False], ids=["together", "alone"])
async def test_an_address_without_an_account_gets_only_an_event_about_no_one(
    uow: UnitOfWorkFactory, together: bool
) -> None:
    await stored(uow, a_user())
    account = AccountAt(random_email("nobody"))
    assert await write_for(uow, account, together=together) == (None, [], None)


@pytest.mark.parametrize(
    ("verified", "active", "found"),
    [(False, True, True), (True, True, False), (False, False, False)],
    ids=["unverified", "verified", "disabled"],
)
async def test_an_account_awaiting_verification_is_an_active_unverified_one(
    uow: UnitOfWorkFactory, verified: bool, active: bool, found: bool
) -> None:
    user = replace(a_user(), is_verified=verified, is_active=active)
    await stored(uow, user)
    account = AccountAt(user.email, awaiting_verification=True)
    token, recipients, event_user = await write_for(uow, account, together=True)
    assert (token is not None, recipients, event_user) == (
        (True, [user.email], user.id) if found else (False, [], None)
    )


async def test_writes_for_an_account_go_together_with_plain_ones(uow: UnitOfWorkFactory) -> None:
    user = a_user()
    await stored(uow, user)
    plain = a_message()
    async with uow() as work:
        await work.outbox.add(plain, NOW)
        await work.outbox.add_for(AccountAt(user.email), a_message(user.email), NOW)
        await work.outbox.add_for(AccountAt(random_email("nobody")), a_message(), NOW)
        await work.commit()
    recipients = sorted(message.recipient for message in await claim(uow, at=0))
    assert recipients == sorted([plain.recipient, user.email])
