"""What owners do to their own accounts: the pending change of email, and the data export."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from bastion.accounts.model import User
from bastion.audit.model import AuditEvent
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.mfa.model import Factor
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
