"""What owners do to their own accounts: change the email, download their data, delete the
account, and take up an admin's invitation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from bastion.accounts.model import User
from bastion.admin.service import erase
from bastion.audit.model import EventType, as_seen_by_owner, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import normalize_email
from bastion.core.errors import NotFound
from bastion.core.one_time_tokens import TokenInvalid, ensure_usable
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import StreamEventType, sessions_revoked, user_event
from bastion.mail import messages
from bastion.owners.model import MAX_EXPORTED_EVENTS, EmailChange, Export, ensure_confirmable
from bastion.passwords.policy import PasswordPolicy, ensure_strong
from bastion.passwords.ports import PasswordHasher
from bastion.sessions.model import RevokeReason
from bastion.storage import UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class OwnerRules:
    policy: PasswordPolicy
    email_change_token_ttl: int
    links: messages.Links


class OwnerService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        rules: OwnerRules,
        mail_queued: Callable[[], None],
        sessions_revoked: Callable[[list[uuid.UUID]], None],
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock
        self._rules = rules
        self._mail_queued = mail_queued
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked

    async def request_email_change(
        self, user_id: uuid.UUID, new_email: str, context: RequestContext
    ) -> None:
        """Mail a confirmation link to ``new_email`` and a notice to the current address.

        The caller learns nothing about whether the new address is taken: then no link is sent,
        and its owner is told instead that someone tried to use it.
        """
        new_email = normalize_email(new_email)
        now = self._clock.now()
        token = new_token()
        ttl = self._rules.email_change_token_ttl
        async with self._uow() as uow:
            user = await _existing(uow, user_id)
            holder = await uow.users.get_by_email(new_email)
            if holder is None:
                await uow.email_changes.add(
                    EmailChange(
                        token_hash=hash_token(token),
                        user_id=user.id,
                        new_email=new_email,
                        created_at=now,
                        expires_at=now + timedelta(seconds=ttl),
                    )
                )
                await uow.outbox.add(
                    messages.confirm_new_email(new_email, self._rules.links, token, ttl / 3600),
                    now,
                )
            else:
                await uow.outbox.add(messages.email_change_to_taken_address(holder.email), now)
            await uow.outbox.add(messages.email_change_requested(user.email), now)
            await uow.audit.record(event(EventType.EMAIL_CHANGE_REQUESTED, now, context, user.id))
            await uow.commit()
        self._mail_queued()

    async def confirm_email_change(self, token: str, context: RequestContext) -> None:
        """Move the account to the confirmed address and sign every session of it out; the old
        address is told, without a link. ``EmailTaken`` if another account took the address
        meanwhile (the link is then left unspent)."""
        now = self._clock.now()
        async with self._uow() as uow:
            change = ensure_confirmable(await uow.email_changes.get(hash_token(token)), now)
            user = await uow.users.get_for_update(change.user_id)
            if user is None or not await uow.email_changes.spend(change.token_hash, now):
                raise TokenInvalid()
            await uow.email_changes.spend_all_for_user(user.id, now)
            # A taken address fails here, or at the commit when a sign-up took it meanwhile:
            # either way the users table's unique address decides, and EmailTaken is raised.
            await uow.users.update(user.with_email(change.new_email, now))
            revoked = await uow.sessions.revoke(user.id, now, RevokeReason.EMAIL_CHANGED.value)
            await uow.events.publish(*sessions_revoked(user.id, revoked, now))
            await uow.outbox.add(messages.email_replaced(user.email), now)
            await uow.audit.record(event(EventType.EMAIL_CHANGED, now, context, user.id))
            await uow.commit()
        self._sessions_revoked(revoked)
        self._mail_queued()

    async def export(self, user_id: uuid.UUID, context: RequestContext) -> Export:
        """The account's data as its owner may download it; the download is itself recorded."""
        now = self._clock.now()
        async with self._uow() as uow:
            user = await _existing(uow, user_id)
            await uow.audit.record(event(EventType.DATA_EXPORTED, now, context, user.id))
            sessions = await uow.sessions.list_kept(user.id)
            events = await uow.audit.list(user_id=user.id, limit=MAX_EXPORTED_EVENTS)
            factors = await uow.mfa_factors.of_user(user.id)
            await uow.commit()
        return Export(
            exported_at=now,
            user=user,
            sessions=sessions,
            security_events=[as_seen_by_owner(item) for item in events],
            factors=factors,
        )

    async def delete_account(self, user_id: uuid.UUID, context: RequestContext) -> None:
        """Erase the account as an admin's erase does, and mail the address a last email
        (which the outbox forgets once delivered)."""
        now = self._clock.now()
        async with self._uow() as uow:
            user = await _existing(uow, user_id, for_update=True)
            revoked = await erase(uow, user, now)
            await uow.outbox.add(messages.account_deleted(user.email), now)
            await uow.audit.record(event(EventType.USER_DELETED, now, context, user.id))
            await uow.commit()
        self._sessions_revoked(revoked)
        self._mail_queued()

    async def accept_invitation(self, token: str, password: str, context: RequestContext) -> None:
        """Set the invited user's chosen password and verify the account. A password the policy
        refuses leaves the link unspent."""
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            invited = ensure_usable(await uow.invitation_tokens.get(hash_token(token)), now)
            user = await uow.users.get(invited.user_id)
        if user is None:
            raise TokenInvalid()
        ensure_strong(password, self._rules.policy, user.email)
        password_hash = await self._hasher.hash(password)
        async with self._uow() as uow:
            user = await uow.users.get_for_update(invited.user_id)
            if user is None or not await uow.invitation_tokens.spend(invited.token_hash, now):
                raise TokenInvalid()
            updated = user.with_password(password_hash, now).with_verified(True, now)
            await uow.users.update(updated)
            await uow.events.publish(user_event(StreamEventType.USER_VERIFIED, user.id, now))
            await uow.audit.record(event(EventType.INVITATION_ACCEPTED, now, context, user.id))
            await uow.commit()


async def _existing(uow: UnitOfWork, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    user = await (uow.users.get_for_update if for_update else uow.users.get)(user_id)
    if user is None:
        raise NotFound("User not found.")
    return user
