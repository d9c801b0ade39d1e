"""Security events: what happened, to whom, from where."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from bastion.core.context import RequestContext


class EventType(StrEnum):
    REGISTERED = "registered"
    EMAIL_VERIFIED = "email_verified"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    IP_BLOCKED = "ip_blocked"
    ACCOUNT_PROTECTED = "account_protected"
    REFRESH = "refresh"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    LOGOUT = "logout"
    SESSION_REVOKED = "session_revoked"
    ALL_SESSIONS_REVOKED = "all_sessions_revoked"
    VERIFICATION_REQUESTED = "verification_requested"
    RESET_REQUESTED = "reset_requested"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a label, not a secret
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a label, not a secret
    ROLE_CHANGED = "role_changed"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    USER_DELETED = "user_deleted"
    MFA_FACTOR_ADDED = "mfa_factor_added"
    MFA_FACTOR_RENAMED = "mfa_factor_renamed"
    MFA_FACTOR_REMOVED = "mfa_factor_removed"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    MFA_PASSED = "mfa_passed"
    MFA_FAILED = "mfa_failed"
    MFA_LOCKED = "mfa_locked"
    WEBAUTHN_COUNTER_REGRESSED = "webauthn_counter_regressed"
    PASSKEY_LOGIN_FAILED = "passkey_login_failed"
    REAUTHENTICATED = "reauthenticated"
    MFA_RESET_BY_ADMIN = "mfa_reset_by_admin"
    SIGNING_KEY_ROTATED = "signing_key_rotated"
    SIGNING_KEY_REVOKED = "signing_key_revoked"
    EMAIL_CHANGE_REQUESTED = "email_change_requested"
    EMAIL_CHANGED = "email_changed"
    DATA_EXPORTED = "data_exported"
    USER_CREATED = "user_created"
    USER_INVITED = "user_invited"
    INVITATION_ACCEPTED = "invitation_accepted"
    RETENTION_PURGED = "retention_purged"
    SERVICE_KEY_CREATED = "service_key_created"
    SERVICE_KEY_REVOKED = "service_key_revoked"
    WEBHOOK_CREATED = "webhook_created"
    WEBHOOK_UPDATED = "webhook_updated"
    WEBHOOK_DELETED = "webhook_deleted"


class LoginFailure(StrEnum):
    UNKNOWN_EMAIL = "unknown_email"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a label, not a secret
    UNVERIFIED = "unverified"
    DISABLED = "disabled"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    type: EventType
    occurred_at: datetime
    user_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


def event(
    type: EventType,
    now: datetime,
    context: RequestContext,
    user_id: uuid.UUID | None = None,
    **details: Any,
) -> AuditEvent:
    return AuditEvent(
        type=type,
        occurred_at=now,
        user_id=user_id,
        ip=context.ip,
        user_agent=context.user_agent,
        details=details,
    )


ERASED = "[erased]"
# Who did it, in an admin's event: kept in the admin audit trail, hidden from the user's own.
ACTOR = "actor_id"


def by(actor_id: uuid.UUID | None) -> dict[str, str]:
    """Who did it, for an admin action's event: the admin, or an operator at the command line."""
    return {ACTOR: str(actor_id)} if actor_id is not None else {"by": "operator"}


def as_seen_by_owner(item: AuditEvent) -> AuditEvent:
    """An event as the account's owner sees it: what was done to the account, not which admin
    did it."""
    if ACTOR not in item.details:
        return item
    details = {key: value for key, value in item.details.items() if key != ACTOR}
    return replace(item, details=details)


def scrub(value: Any, email: str) -> Any:
    """``value`` (event details) with every occurrence of ``email`` replaced, at any depth.

    Addresses are compared case-insensitively, as accounts are.
    """
    if isinstance(value, str):
        return re.sub(re.escape(email), ERASED, value, flags=re.IGNORECASE)
    if isinstance(value, dict):
        return {scrub(key, email): scrub(item, email) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, email) for item in value]
    return value
