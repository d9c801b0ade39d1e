"""Helpers for the second-factor tests: the real services over a real database and SMTP, a
frozen clock, users with factors, and real TOTP codes from pyotp."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp

from bastion.accounts.model import Role, User
from bastion.audit.model import AuditEvent, EventType
from bastion.bootstrap import Services, build
from bastion.core.clock import FrozenClock
from bastion.core.context import RequestContext
from bastion.mfa.service import Enrolled, MfaService
from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.support import PUBLIC_URL, STRONG_PASSWORD, Mailbox, SmtpServer, make_settings
from tests.support import random_email as random_address

CONTEXT = RequestContext(ip="203.0.113.7", user_agent="mfa-tests")
ORIGIN = PUBLIC_URL  # the origin of PUBLIC_URL, so the default WebAuthn origin


@dataclass
class MfaWorld:
    services: Services
    clock: FrozenClock
    mailbox: Mailbox

    @property
    def mfa(self) -> MfaService:
        return self.services.mfa

    async def user(self, role: Role = Role.USER) -> User:
        return await self.services.accounts.create_user(
            random_address("mfa"), STRONG_PASSWORD, role
        )

    def code(self, secret: str, steps: int = 0) -> str:
        """The TOTP code of ``secret`` ``steps`` time steps from the clock's now."""
        return pyotp.TOTP(secret).at(self.clock.now() + timedelta(seconds=30 * steps))

    async def with_totp(self, user: User) -> tuple[str, list[str] | None]:
        """Enrol and confirm a TOTP factor; its secret and the recovery codes it brought. The
        clock moves to the next step, so the confirming code is spent and the next one is due."""
        enrolment = await self.mfa.start_totp_enrolment(user, "Phone")
        enrolled = await self.mfa.confirm_totp(
            user, enrolment.factor_id, self.code(enrolment.secret), CONTEXT
        )
        self.clock.advance(30)
        return enrolment.secret, enrolled.recovery_codes

    async def with_key(
        self, user: User, authenticator: SoftwareAuthenticator, *, passkey: bool = False
    ) -> Enrolled:
        options = await self.mfa.registration_options(user, passkey=passkey)
        return await self.mfa.register_webauthn(
            user, None, authenticator.create(options, ORIGIN), CONTEXT
        )

    async def login_token(
        self, user: User, *, remember_me: bool = False, security_state: str = "state"
    ) -> str:
        due = await self.mfa.start_second_step(user, remember_me, security_state)
        assert due is not None, "the user has no second factor"
        return due.mfa_token

    async def events(self, user_id: uuid.UUID | None, kind: EventType) -> list[AuditEvent]:
        async with self.services.uow(read_only=True) as uow:
            return await uow.audit.list(user_id=user_id, type=kind.value)


@asynccontextmanager
async def mfa_world(
    database_url: str, smtp: SmtpServer, **settings: Any
) -> AsyncIterator[MfaWorld]:
    clock = FrozenClock()
    # The default role policy (admins need a second factor), which make_settings turns off.
    settings = {"mfa_required_roles": ["admin"], **settings}
    services = build(make_settings(database_url, smtp.url, **settings), clock=clock)
    await services.start()
    try:
        yield MfaWorld(services, clock, smtp.mailbox)
    finally:
        await services.stop()


async def account(services: Services, email: str) -> User:
    """The account with this address, as stored."""
    async with services.uow(read_only=True) as uow:
        user = await uow.users.get_by_email(email)
    assert user is not None, email
    return user


async def enrol_totp(services: Services, clock: FrozenClock, email: str) -> tuple[str, list[str]]:
    """Give the account a confirmed TOTP factor through the service; its secret and recovery
    codes. The clock moves to the next step, so the confirming code is spent."""
    user = await account(services, email)
    enrolment = await services.mfa.start_totp_enrolment(user, "Phone")
    code = pyotp.TOTP(enrolment.secret).at(clock.now())
    enrolled = await services.mfa.confirm_totp(user, enrolment.factor_id, code, CONTEXT)
    clock.advance(30)
    return enrolment.secret, enrolled.recovery_codes or []


def totp_at(clock: FrozenClock, secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + timedelta(seconds=30 * steps))
