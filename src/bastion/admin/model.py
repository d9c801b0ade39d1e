"""Who may do what in the admin API, and the rules about changing users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bastion.accounts.model import Role, User
from bastion.core.pagination import parse_row_id


class Permission(StrEnum):
    READ_USERS = "read_users"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"
    # Service keys and webhooks: what other systems may read of Bastion.
    MANAGE_INTEGRATIONS = "manage_integrations"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MANAGER: frozenset({Permission.READ_USERS, Permission.READ_AUDIT}),
    Role.USER: frozenset(),
    Role.GUEST: frozenset(),
}


def allows(role: str, permission: Permission) -> bool:
    """Whether a role (as claimed in an access token) grants ``permission``.

    An unknown role grants nothing: a token minted before a role was removed stays harmless.
    """
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class UserChanges:
    """The fields an admin may change; None leaves a field as it is."""

    role: Role | None = None
    is_active: bool | None = None
    is_verified: bool | None = None


def is_active_admin(user: User) -> bool:
    return user.role is Role.ADMIN and user.is_active


def removes_an_admin(before: User, after: User) -> bool:
    """Whether the change takes an active admin away (demotion or deactivation)."""
    return is_active_admin(before) and not is_active_admin(after)


def user_cursor(user_id: uuid.UUID) -> str:
    return str(user_id)


def parse_user_cursor(cursor: str) -> uuid.UUID:
    """The user id a cursor points after; ValueError if it was not issued by us."""
    return uuid.UUID(cursor)


def event_cursor(event_id: int) -> str:
    return str(event_id)


def parse_event_cursor(cursor: str) -> int:
    """The event id a cursor points before; ValueError if it was not issued by us."""
    return parse_row_id(cursor)


def apply_changes(user: User, changes: UserChanges, now: datetime) -> User:
    updated = user
    if changes.role is not None:
        updated = updated.with_role(changes.role, now)
    if changes.is_active is not None:
        updated = updated.with_active(changes.is_active, now)
    if changes.is_verified is not None:
        updated = updated.with_verified(changes.is_verified, now)
    return updated
