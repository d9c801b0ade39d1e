"""Sign-up and email verification."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bastion.accounts.errors import EmailAlreadyVerified, EmailTaken
from bastion.accounts.model import Role, User, new_user
from bastion.audit.model import EventType, event
from bastion.core.account_at import AccountAt
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import normalize_email
from bastion.core.errors import NotFound
from bastion.core.one_time_tokens import OneTimeToken, TokenInvalid, ensure_usable
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import StreamEventType, user_event
from bastion.mail import messages
from bastion.mail.model import EmailMessage
from bastion.passwords.policy import PasswordPolicy, ensure_strong
from bastion.passwords.ports import PasswordHasher
from bastion.storage import UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class AccountRules:
    policy: PasswordPolicy
    verification_token_ttl: int
    links: messages.Links


@dataclass(frozen=True, slots=True)
class VerificationLink:
    """A new verification token, as stored (its hash), and the email that carries it."""

    token_hash: str
    expires_at: datetime
    message: EmailMessage


class AccountService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        rules: AccountRules,
        mail_queued: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock
        self._rules = rules
        self._mail_queued = mail_queued

    async def register(self, email: str, password: str, context: RequestContext) -> None:
        """Create an unverified account and mail a verification link.

        The caller learns nothing about whether the address was taken: an existing account gets
        an email instead, and both paths hash the password so they take the same time.
        """
        email = normalize_email(email)
        ensure_strong(password, self._rules.policy, email)
        password_hash = await self._hasher.hash(password)
        now = self._clock.now()
        try:
            async with self._uow() as uow:
                user = new_user(email, password_hash, now)
                await uow.users.add(user)
                await self._send_verification(uow, user)
                await uow.audit.record(event(EventType.REGISTERED, now, context, user.id))
                await uow.events.publish(user_event(StreamEventType.USER_REGISTERED, user.id, now))
                await uow.commit()
        except EmailTaken:
            async with self._uow() as uow:
                await uow.outbox.add(messages.already_registered(email, self._rules.links), now)
                await uow.commit()
        self._mail_queued()

    async def create_user(self, email: str, password: str, role: Role) -> User:
        """An operator-created account: verified at once, no email."""
        email = normalize_email(email)
        ensure_strong(password, self._rules.policy, email)
        user = new_user(
            email, await self._hasher.hash(password), self._clock.now(), role=role, verified=True
        )
        async with self._uow() as uow:
            await uow.users.add(user)
            await uow.events.publish(
                user_event(StreamEventType.USER_REGISTERED, user.id, user.created_at),
                user_event(StreamEventType.USER_VERIFIED, user.id, user.created_at),
            )
            await uow.commit()
        return user

    async def seeding_hash(self, password: str, email: str) -> str:
        """The one hash every user of a ``bastion seed-users`` run shares (test users are not
        secrets, and a million hashes would take hours); the password meets the policy still."""
        ensure_strong(password, self._rules.policy, email)
        return await self._hasher.hash(password)

    async def verify_email(self, token: str, context: RequestContext) -> None:
        """Confirm the address the token was mailed to. A spent token of a confirmed address
        (the link clicked twice) raises ``EmailAlreadyVerified`` rather than a bare
        ``TokenInvalid``."""
        now = self._clock.now()
        async with self._uow() as uow:
            found = await uow.verification_tokens.get(hash_token(token))
            if found is not None and found.used_at is not None:
                owner = await uow.users.get(found.user_id)
                if owner is not None and owner.is_verified:
                    raise EmailAlreadyVerified()
            stored = ensure_usable(found, now)
            user = await uow.users.get_for_update(stored.user_id)
            if user is None or not await uow.verification_tokens.spend(stored.token_hash, now):
                raise TokenInvalid()
            if not user.is_verified:
                await uow.users.update(user.with_verified(True, now))
                await uow.audit.record(event(EventType.EMAIL_VERIFIED, now, context, user.id))
                await uow.events.publish(user_event(StreamEventType.USER_VERIFIED, user.id, now))
            await uow.commit()

    async def resend_verification(self, email: str, context: RequestContext) -> None:
        """Mail a fresh link to an active, unverified account; silently nothing otherwise.

        Nor can the time tell which: the link and the email are made, and the same statements
        sent, whatever the address; the database writes the token and queues the email only
        for such an account. The event is recorded either way, about the account at the address
        if there is one.
        """
        email = normalize_email(email)
        account = AccountAt(email, awaiting_verification=True)
        now = self._clock.now()
        link = self._verification_link(email, now)
        async with self._uow() as uow:
            await uow.verification_tokens.add_for(account, link.token_hash, now, link.expires_at)
            await uow.outbox.add_for(account, link.message, now)
            await uow.audit.record_for(
                AccountAt(email), event(EventType.VERIFICATION_REQUESTED, now, context)
            )
            await uow.commit()
        self._mail_queued()

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("User not found.")
        return user

    async def _send_verification(self, uow: UnitOfWork, user: User) -> None:
        now = self._clock.now()
        link = self._verification_link(user.email, now)
        await uow.verification_tokens.add(
            OneTimeToken(link.token_hash, user.id, created_at=now, expires_at=link.expires_at)
        )
        await uow.outbox.add(link.message, now)

    def _verification_link(self, email: str, now: datetime) -> VerificationLink:
        token = new_token()
        ttl = self._rules.verification_token_ttl
        return VerificationLink(
            token_hash=hash_token(token),
            expires_at=now + timedelta(seconds=ttl),
            message=messages.verify_email(email, self._rules.links, token, ttl / 3600),
        )
