"""The admin use cases: find, change and delete users; read the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from bastion.accounts.model import Role, User, new_user
from bastion.admin.errors import InvalidCursor, LastAdmin, UserNotFound
from bastion.admin.model import (
    UserChanges,
    apply_changes,
    event_cursor,
    is_active_admin,
    parse_event_cursor,
    parse_user_cursor,
    removes_an_admin,
    user_cursor,
)
from bastion.audit.model import ACTOR, AuditEvent, EventType, by, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import fold, normalize_email
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.pagination import Page, page_of
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import StreamEventType, sessions_revoked, user_event
from bastion.mail import messages
from bastion.passwords.policy import PasswordPolicy, ensure_strong
from bastion.passwords.ports import PasswordHasher
from bastion.sessions.errors import SessionNotFound
from bastion.sessions.model import RevokeReason, Session
from bastion.storage import UnitOfWork, UnitOfWorkFactory

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class AdminRules:
    policy: PasswordPolicy
    invite_token_ttl: int
    reset_token_ttl: int
    links: messages.Links


class AdminService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        sessions_revoked: Callable[[list[uuid.UUID]], None],
        *,
        hasher: PasswordHasher,
        rules: AdminRules,
        mail_queued: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._clock = clock
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked
        self._hasher = hasher
        self._rules = rules
        self._mail_queued = mail_queued

    async def create_user(
        self,
        actor_id: uuid.UUID,
        email: str,
        role: Role,
        *,
        password: str | None,
        context: RequestContext,
    ) -> User:
        """Create an account: with ``password`` set by the admin (verified at once), or without
        one (``None``), inviting the user by email to choose their own. ``EmailTaken`` if the
        address has an account: admins may know."""
        email = normalize_email(email)
        if password is not None:
            ensure_strong(password, self._rules.policy, email)
        # An invited user has no password until they choose one: a hash of random bits that
        # nobody knows stands in for it.
        password_hash = await self._hasher.hash(password if password is not None else new_token())
        now = self._clock.now()
        user = new_user(email, password_hash, now, role=role, verified=password is not None)
        async with self._uow() as uow:
            await uow.users.add(user)
            await uow.events.publish(
                user_event(StreamEventType.USER_REGISTERED, user.id, now),
                *(
                    [user_event(StreamEventType.USER_VERIFIED, user.id, now)]
                    if user.is_verified
                    else []
                ),
            )
            details = {ACTOR: str(actor_id), "role": role.value}
            if password is None:
                token = new_token()
                ttl = self._rules.invite_token_ttl
                expires_at = now + timedelta(seconds=ttl)
                await uow.invitation_tokens.add(
                    OneTimeToken(hash_token(token), user.id, created_at=now, expires_at=expires_at)
                )
                await uow.outbox.add(
                    messages.invitation(email, self._rules.links, token, ttl / 3600), now
                )
            kind = EventType.USER_CREATED if password is not None else EventType.USER_INVITED
            await uow.audit.record(event(kind, now, context, user.id, **details))
            await uow.commit()
        self._mail_queued()
        return user

    async def find_by_email(self, email: str) -> User:
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get_by_email(normalize_email(email))
        if user is None:
            raise UserNotFound()
        return user

    async def list_sessions(self, user_id: uuid.UUID) -> list[Session]:
        """The user's live sessions, newest first."""
        async with self._uow(read_only=True) as uow:
            user = await _existing(uow, user_id)
            return await uow.sessions.list_active(user.id, self._clock.now())

    async def revoke_sessions(
        self,
        actor_id: uuid.UUID,
        user_id: uuid.UUID,
        context: RequestContext,
        *,
        session_id: uuid.UUID | None = None,
    ) -> None:
        """End one of the user's sessions, or all of them; every instance sees it within
        SESSION_CACHE_SECONDS."""
        now = self._clock.now()
        async with self._uow() as uow:
            user = await _existing(uow, user_id)
            revoked = await uow.sessions.revoke(
                user.id, now, RevokeReason.ADMIN.value, only=session_id
            )
            if session_id is not None and not revoked:
                raise SessionNotFound()
            await uow.events.publish(*sessions_revoked(user.id, revoked, now))
            if session_id is None:
                kind, details = EventType.ALL_SESSIONS_REVOKED, {}
            else:
                kind, details = EventType.SESSION_REVOKED, {"session_id": str(session_id)}
            await uow.audit.record(
                event(kind, now, context, user.id, **{ACTOR: str(actor_id)}, **details)
            )
            await uow.commit()
        self._sessions_revoked(revoked)

    async def send_password_reset(
        self, actor_id: uuid.UUID, user_id: uuid.UUID, context: RequestContext
    ) -> None:
        """Mail the user the normal password-reset link."""
        now = self._clock.now()
        token = new_token()
        ttl = self._rules.reset_token_ttl
        async with self._uow() as uow:
            user = await _existing(uow, user_id)
            await uow.reset_tokens.add(
                OneTimeToken(
                    hash_token(token),
                    user.id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
            await uow.outbox.add(
                messages.reset_password(user.email, self._rules.links, token, ttl / 3600), now
            )
            await uow.audit.record(
                event(EventType.RESET_REQUESTED, now, context, user.id, **{ACTOR: str(actor_id)})
            )
            await uow.commit()
        self._mail_queued()

    async def list_users(
        self, *, email_contains: str | None, role: Role | None, cursor: str | None, limit: int
    ) -> Page[User, str]:
        """Users whose address contains ``email_contains``, spelt any way that folds alike."""
        after = _parse(parse_user_cursor, cursor)
        email_contains = fold(email_contains) if email_contains else None
        async with self._uow(read_only=True) as uow:
            users = await uow.users.search(
                email_contains=email_contains, role=role, after=after, limit=limit + 1
            )
        return page_of(users, limit, lambda user: user_cursor(user.id))

    async def get_user(self, user_id: uuid.UUID) -> User:
        async with self._uow(read_only=True) as uow:
            return await _existing(uow, user_id)

    async def update_user(
        self,
        actor_id: uuid.UUID | None,
        user_id: uuid.UUID,
        changes: UserChanges,
        context: RequestContext,
    ) -> User:
        """Change a user's role or status; a changed role or a deactivation ends their sessions.

        Ending the sessions keeps the role claimed by live tokens true, and locks a disabled user
        out at once rather than when their access token expires.
        """
        now = self._clock.now()
        async with self._uow() as uow:
            admins = await uow.users.count_active_admins()
            user = await _existing(uow, user_id, for_update=True)
            updated = apply_changes(user, changes, now)
            if removes_an_admin(user, updated) and admins <= 1:
                raise LastAdmin()
            await uow.users.update(updated)
            revoked: list[uuid.UUID] = []
            actor = by(actor_id)
            if updated.role is not user.role:
                revoked += await uow.sessions.revoke(user.id, now, RevokeReason.ROLE_CHANGED.value)
                await uow.events.publish(
                    user_event(StreamEventType.USER_ROLE_CHANGED, user.id, now)
                )
                await uow.audit.record(
                    event(
                        EventType.ROLE_CHANGED,
                        now,
                        context,
                        user.id,
                        **actor,
                        old_role=user.role.value,
                        new_role=updated.role.value,
                    )
                )
            if updated.is_active != user.is_active:
                if not updated.is_active:
                    revoked += await uow.sessions.revoke(
                        user.id, now, RevokeReason.USER_DISABLED.value
                    )
                    await uow.events.publish(
                        user_event(StreamEventType.USER_DISABLED, user.id, now)
                    )
                kind = EventType.USER_ENABLED if updated.is_active else EventType.USER_DISABLED
                await uow.audit.record(event(kind, now, context, user.id, **actor))
            if updated.is_verified and not user.is_verified:
                await uow.audit.record(
                    event(EventType.EMAIL_VERIFIED, now, context, user.id, **actor)
                )
                await uow.events.publish(user_event(StreamEventType.USER_VERIFIED, user.id, now))
            await uow.events.publish(*sessions_revoked(user.id, revoked, now))
            await uow.commit()
        self._sessions_revoked(revoked)
        return updated

    async def delete_user(
        self, actor_id: uuid.UUID | None, user_id: uuid.UUID, context: RequestContext
    ) -> None:
        """Forget a user: the account, its sessions and tokens, queued mail, and its email
        wherever the audit trail mentions it. Events keep the id, now a pseudonym."""
        now = self._clock.now()
        async with self._uow() as uow:
            user = await _existing(uow, user_id, for_update=True)
            revoked = await erase(uow, user, now)
            await uow.audit.record(
                event(EventType.USER_DELETED, now, context, user.id, **by(actor_id))
            )
            await uow.commit()
        self._sessions_revoked(revoked)

    async def list_events(
        self,
        *,
        user_id: uuid.UUID | None,
        type: EventType | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AuditEvent, str]:
        before = _parse(parse_event_cursor, cursor)
        async with self._uow(read_only=True) as uow:
            events = await uow.audit.list(
                user_id=user_id,
                type=type.value if type else None,
                before=before,
                limit=limit + 1,
            )
        return page_of(events, limit, lambda item: event_cursor(item.id or 0))


async def erase(uow: UnitOfWork, user: User, now: datetime) -> list[uuid.UUID]:
    """Forget ``user`` (locked for update) within ``uow``: the account, its sessions and
    tokens, queued mail, and its email wherever the audit trail mentions it; the ids of the
    sessions it ended. The caller records who asked. The last active admin is never erased."""
    if is_active_admin(user) and await uow.users.count_active_admins() <= 1:
        raise LastAdmin()
    revoked = await uow.sessions.revoke(user.id, now, RevokeReason.USER_DELETED.value)
    await uow.events.publish(
        user_event(StreamEventType.USER_DELETED, user.id, now),
        *sessions_revoked(user.id, revoked, now),
    )
    await uow.outbox.forget_recipient(user.email)
    await uow.audit.erase(user.email)
    # Sessions, refresh tokens and one-time tokens go with the user (foreign-key cascade).
    await uow.users.delete(user.id)
    return revoked


async def _existing(uow: UnitOfWork, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    """The user, locked against concurrent changes when this unit of work will write it."""
    user = await (uow.users.get_for_update if for_update else uow.users.get)(user_id)
    if user is None:
        raise UserNotFound()
    return user


def _parse(parse: Callable[[str], C], cursor: str | None) -> C | None:
    if cursor is None:
        return None
    try:
        return parse(cursor)
    except ValueError:
        raise InvalidCursor() from None
