"""Server-side sessions and the rules about their lifetime."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# What a password log-in proves (the values of ``mfa.model.password_assurance``).
PASSWORD_AAL = "aal1"  # noqa: S105 - a label, not a secret
PASSWORD_AMR: tuple[str, ...] = ("pwd",)


class RevokeReason(StrEnum):
    LOGOUT = "logout"
    USER = "revoked_by_user"
    ALL = "all_revoked"
    REFRESH_REUSE = "refresh_reuse"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a label, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a label, not a secret
    USER_DISABLED = "user_disabled"
    ROLE_CHANGED = "role_changed"
    USER_DELETED = "user_deleted"
    MFA_RESET = "mfa_reset"
    EMAIL_CHANGED = "email_changed"
    ADMIN = "revoked_by_admin"


@dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    remember_me: bool
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    # How the session last proved who it is: the ``aal`` and ``amr`` claims of its access
    # tokens, and when (``auth_time``). A refresh keeps them; only a new proof changes them.
    aal: str = PASSWORD_AAL
    amr: tuple[str, ...] = PASSWORD_AMR
    auth_time: datetime | None = None

    @property
    def authenticated_at(self) -> datetime:
        """When the session last proved who it is (its start, for sessions from before)."""
        return self.auth_time or self.created_at

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


def session_lifetime(remember_me: bool, session_ttl: int, remember_me_ttl: int) -> timedelta:
    """A session's lifetime is fixed at login; refreshing never extends it."""
    return timedelta(seconds=remember_me_ttl if remember_me else session_ttl)


def new_session(
    user_id: uuid.UUID,
    now: datetime,
    lifetime: timedelta,
    *,
    remember_me: bool,
    ip: str | None,
    user_agent: str | None,
    aal: str = PASSWORD_AAL,
    amr: tuple[str, ...] = PASSWORD_AMR,
) -> Session:
    return Session(
        id=uuid.uuid4(),
        user_id=user_id,
        created_at=now,
        expires_at=now + lifetime,
        last_seen_at=now,
        ip=ip,
        user_agent=user_agent[:512] if user_agent else None,
        remember_me=remember_me,
        aal=aal,
        amr=amr,
        auth_time=now,
    )


LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def needs_touch(last_seen_at: datetime, now: datetime) -> bool:
    """Whether last_seen_at is stale enough to be worth a write."""
    return now - last_seen_at >= LAST_SEEN_RESOLUTION
