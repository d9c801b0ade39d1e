"""The admin use cases: find, change and delete users; read the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from bastion.accounts.model import Role, User
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
from bastion.audit.model import AuditEvent, EventType, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import fold
from bastion.core.pagination import Page, page_of
from bastion.events.model import StreamEventType, sessions_revoked, user_event
from bastion.sessions.model import RevokeReason
from bastion.storage import UnitOfWork, UnitOfWorkFactory

C = TypeVar("C")


class AdminService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        sessions_revoked: Callable[[list[uuid.UUID]], None],
    ) -> None:
        self._uow = uow
        self._clock = clock
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked

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
        self, actor_id: uuid.UUID, user_id: uuid.UUID, changes: UserChanges, context: RequestContext
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
            actor = str(actor_id)
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
                        actor_id=actor,
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
                await uow.audit.record(event(kind, now, context, user.id, actor_id=actor))
            if updated.is_verified and not user.is_verified:
                await uow.audit.record(
                    event(EventType.EMAIL_VERIFIED, now, context, user.id, actor_id=actor)
                )
                await uow.events.publish(user_event(StreamEventType.USER_VERIFIED, user.id, now))
            await uow.events.publish(*sessions_revoked(user.id, revoked, now))
            await uow.commit()
        self._sessions_revoked(revoked)
        return updated

    async def delete_user(
        self, actor_id: uuid.UUID, user_id: uuid.UUID, context: RequestContext
    ) -> None:
        """Forget a user: the account, its sessions and tokens, queued mail, and its email
        wherever the audit trail mentions it. Events keep the id, now a pseudonym."""
        now = self._clock.now()
        async with self._uow() as uow:
            admins = await uow.users.count_active_admins()
            user = await _existing(uow, user_id, for_update=True)
            if is_active_admin(user) and admins <= 1:
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
            await uow.audit.record(
                event(EventType.USER_DELETED, now, context, user.id, actor_id=str(actor_id))
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
