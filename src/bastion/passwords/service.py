"""Forgotten passwords, resets and changes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bastion.audit.model import EventType, event
from bastion.core.account_at import AccountAt
from bastion.core.clock import Clock
from bastion.core.context import Principal, RequestContext
from bastion.core.email_address import normalize_email
from bastion.core.errors import NotFound
from bastion.core.one_time_tokens import TokenInvalid, ensure_usable
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import StreamEventType, sessions_revoked, user_event
from bastion.mail import messages
from bastion.passwords.errors import WrongPassword
from bastion.passwords.policy import PasswordPolicy, ensure_strong
from bastion.passwords.ports import PasswordConfirmation, PasswordHasher
from bastion.sessions.model import RevokeReason
from bastion.storage import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class ResetRules:
    policy: PasswordPolicy
    reset_token_ttl: int
    links: messages.Links


class PasswordService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        rules: ResetRules,
        mail_queued: Callable[[], None],
        sessions_revoked: Callable[[list[uuid.UUID]], None],
        confirmation: PasswordConfirmation,
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock
        self._rules = rules
        self._confirmation = confirmation
        self._mail_queued = mail_queued
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked

    async def forgot_password(self, email: str, context: RequestContext) -> None:
        """Mail a reset link if the account exists; the caller cannot tell either way.

        Nor can the time tell: the link and the email are made, and the same statements sent,
        whether or not there is an account; the database writes the token and queues the email
        only for one. The event is recorded either way (it also shows someone probing for
        accounts).
        """
        email = normalize_email(email)
        account = AccountAt(email)
        now = self._clock.now()
        token = new_token()
        ttl = self._rules.reset_token_ttl
        message = messages.reset_password(email, self._rules.links, token, ttl / 3600)
        async with self._uow() as uow:
            await uow.reset_tokens.add_for(
                account, hash_token(token), now, now + timedelta(seconds=ttl)
            )
            await uow.outbox.add_for(account, message, now)
            await uow.audit.record_for(account, event(EventType.RESET_REQUESTED, now, context))
            await uow.commit()
        self._mail_queued()

    async def reset_password(self, token: str, new_password: str, context: RequestContext) -> None:
        """Set a new password from a mailed link; every session of the user ends.

        The password, the spent tokens, the revoked sessions and the notification commit together.
        """
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            stored = ensure_usable(await uow.reset_tokens.get(hash_token(token)), now)
            user = await uow.users.get(stored.user_id)
        if user is None:
            raise TokenInvalid()
        ensure_strong(new_password, self._rules.policy, user.email)
        password_hash = await self._hasher.hash(new_password)
        now = self._clock.now()
        async with self._uow() as uow:
            # The account first, then its tokens: the order in which a deletion locks them.
            current = await uow.users.get_for_update(user.id)
            if current is None or not await uow.reset_tokens.spend(stored.token_hash, now):
                raise TokenInvalid()
            await uow.reset_tokens.spend_all_for_user(user.id, now)
            await uow.users.update(
                current.with_password(password_hash, now).with_verified(True, now)
            )
            revoked = await uow.sessions.revoke(user.id, now, RevokeReason.PASSWORD_RESET.value)
            await uow.events.publish(
                user_event(StreamEventType.PASSWORD_RESET, user.id, now),
                *sessions_revoked(user.id, revoked, now),
            )
            await uow.outbox.add(messages.password_changed(user.email), now)
            await uow.audit.record(
                event(
                    EventType.PASSWORD_RESET, now, context, user.id, sessions_revoked=len(revoked)
                )
            )
            await uow.commit()
        self._sessions_revoked(revoked)
        self._mail_queued()

    async def change_password(
        self,
        principal: Principal,
        current_password: str,
        new_password: str,
        context: RequestContext,
    ) -> None:
        """Change the password knowing the current one; other sessions end, this one stays.

        A wrong current password counts as a failed log-in (lockouts, audit, the owner's mail).
        The change is made only if the account is still as the confirmation saw it: a reset,
        deactivation or other change in between makes the confirmed password moot.
        """
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(principal.user_id)
        if user is None:
            raise NotFound("User not found.")
        confirmed = await self._confirmation.confirm_password(user.email, current_password, context)
        ensure_strong(new_password, self._rules.policy, user.email)
        password_hash = await self._hasher.hash(new_password)
        now = self._clock.now()
        async with self._uow() as uow:
            current = await uow.users.get_for_update(user.id)
            if current is None or current.security_stamp != confirmed:
                raise WrongPassword()
            await uow.users.update(current.with_password(password_hash, now))
            revoked = await uow.sessions.revoke(
                user.id, now, RevokeReason.PASSWORD_CHANGED.value, keep=principal.session_id
            )
            await uow.events.publish(
                user_event(StreamEventType.PASSWORD_CHANGED, user.id, now),
                *sessions_revoked(user.id, revoked, now),
            )
            await uow.outbox.add(messages.password_changed(user.email), now)
            await uow.audit.record(
                event(
                    EventType.PASSWORD_CHANGED, now, context, user.id, sessions_revoked=len(revoked)
                )
            )
            await uow.commit()
        self._sessions_revoked(revoked)
        self._mail_queued()
