"""What owners do to their own accounts: the pending change of email, and the data export."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bastion.accounts.model import User
from bastion.audit.model import AuditEvent
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.mfa.model import Factor, FactorType, TotpFactor
from bastion.sessions.model import Session

# How many security events an export carries at most (newest first); the retention purge keeps
# far fewer for any one user.
MAX_EXPORTED_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class EmailChange:
    """A change of address waiting for the new address to confirm it (by the hash of the
    mailed token)."""

    token_hash: str
    user_id: uuid.UUID
    new_email: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


def ensure_confirmable(change: EmailChange | None, now: datetime) -> EmailChange:
    """The change if its link may be used now; otherwise the error the user should see."""
    if change is None or change.used_at is not None:
        raise TokenInvalid()
    if now >= change.expires_at:
        raise TokenExpired()
    return change


@dataclass(frozen=True, slots=True)
class Export:
    """Everything Bastion keeps about one account, as its owner may download it."""

    exported_at: datetime
    user: User
    sessions: list[Session]
    security_events: list[AuditEvent]
    factors: list[Factor]


def export_document(data: Export) -> dict[str, Any]:
    """The export as JSON, field by field (docs/api.md): never a hash, secret or token."""
    user = data.user
    return {
        "exported_at": _time(data.exported_at),
        "user": {
            "id": str(user.id),
            "email": user.email,
            "role": user.role.value,
            "is_verified": user.is_verified,
            "is_active": user.is_active,
            "created_at": _time(user.created_at),
            "updated_at": _time(user.updated_at),
        },
        "sessions": [
            {
                "id": str(s.id),
                "created_at": _time(s.created_at),
                "last_seen_at": _time(s.last_seen_at),
                "expires_at": _time(s.expires_at),
                "revoked_at": _time(s.revoked_at),
                "revoke_reason": s.revoke_reason,
                "ip": s.ip,
                "user_agent": s.user_agent,
                "remember_me": s.remember_me,
            }
            for s in data.sessions
        ],
        "security_events": [
            {
                "id": item.id,
                "type": item.type.value,
                "occurred_at": _time(item.occurred_at),
                "ip": item.ip,
                "user_agent": item.user_agent,
                "details": item.details,
            }
            for item in data.security_events
        ],
        "factors": [_factor(factor) for factor in data.factors],
    }


def _factor(factor: Factor) -> dict[str, Any]:
    if isinstance(factor, TotpFactor):
        kind, confirmed_at = FactorType.TOTP.value, factor.confirmed_at
    else:
        kind, confirmed_at = FactorType.WEBAUTHN.value, factor.created_at
    return {
        "id": str(factor.id),
        "type": kind,
        "name": factor.name,
        "created_at": _time(factor.created_at),
        "confirmed_at": _time(confirmed_at),
        "last_used_at": _time(factor.last_used_at),
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
