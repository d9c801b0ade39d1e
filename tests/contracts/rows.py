"""Rows for the contract suites: unique data, at whole seconds (every database keeps them)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.accounts.model import Role, User, new_user
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.secrets import hash_token, new_token
from bastion.mfa.model import WebAuthnCredential
from bastion.sessions.model import Session, new_session
from bastion.storage import UnitOfWorkFactory
from tests.support import random_email

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def a_user(*, role: Role = Role.USER, email: str | None = None) -> User:
    return new_user(email or random_email("contract"), "$argon2id$not-a-real-hash", NOW, role=role)


def a_session(user_id: uuid.UUID, *, created: float = 0, lifetime: float = 3600) -> Session:
    return new_session(
        user_id,
        later(created),
        timedelta(seconds=lifetime),
        remember_me=True,
        ip="198.51.100.7",
        user_agent="contract tests",
    )


def a_token(user_id: uuid.UUID, *, lifetime: float = 3600) -> OneTimeToken:
    return OneTimeToken(
        token_hash=hash_token(new_token()),
        user_id=user_id,
        created_at=NOW,
        expires_at=later(lifetime),
    )


def a_credential(user_id: uuid.UUID, **changes: Any) -> WebAuthnCredential:
    """A security key's credential as registration stores it."""
    credential = WebAuthnCredential(
        id=uuid.uuid4(),
        user_id=user_id,
        name="Blue key",
        credential_id=uuid.uuid4().bytes + b"-credential",
        public_key=b"\xa5\x01\x02cose-key",
        sign_count=0,
        transports=("usb", "nfc"),
        aaguid="00000000-0000-0000-0000-000000000000",
        backup_eligible=False,
        backup_state=False,
        passkey=False,
        created_at=NOW,
    )
    return replace(credential, **changes)


async def stored(uow: UnitOfWorkFactory, *users: User) -> None:
    async with uow() as work:
        for user in users:
            await work.users.add(user)
        await work.commit()


async def stored_user(uow: UnitOfWorkFactory, *, role: Role = Role.USER) -> User:
    user = a_user(role=role)
    await stored(uow, user)
    return user


async def stored_session(uow: UnitOfWorkFactory, user: User, **shape: float) -> Session:
    session = a_session(user.id, **shape)
    async with uow() as work:
        await work.sessions.add(session)
        await work.commit()
    return session
