"""What the retention purge deletes, and from when, as plain data and rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Purgeable(StrEnum):
    """Rows that would grow forever; each kind is deleted in batches of its own."""

    AUDIT_EVENTS = "audit_events"  # that occurred before the cutoff
    EXPIRED_SESSIONS = "expired_sessions"  # that expired before it, with their refresh tokens
    REVOKED_SESSIONS = "revoked_sessions"  # that were revoked before it, with their refresh tokens
    VERIFICATION_TOKENS = "verification_tokens"  # email-verification links expired before it
    RESET_TOKENS = "reset_tokens"  # noqa: S105 - a label, not a secret
    INVITATION_TOKENS = "invitation_tokens"  # noqa: S105 - a label, not a secret
    EMAIL_CHANGE_TOKENS = "email_change_tokens"  # noqa: S105 - a label, not a secret
    SENT_EMAILS = "sent_emails"  # delivered before it
    FAILED_EMAILS = "failed_emails"  # given up on before it
    STREAM_EVENTS = "stream_events"  # that occurred before it (EVENT_RETENTION)


# A one-time link is kept a week past its expiry only so that a late click hears "expired"
# rather than "invalid"; whether it was used is in the audit trail.
ONE_TIME_TOKEN_RETENTION = timedelta(days=7)
# A delivered email is kept a day, to answer "did it go out?"; one given up on a week, to find
# out why (its last error). Either holds an address and a sealed body until it goes.
SENT_EMAIL_RETENTION = timedelta(days=1)
FAILED_EMAIL_RETENTION = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RetentionRules:
    audit_days: int  # 0 keeps audit events forever
    session_days: int  # 0 keeps ended sessions forever
    event_seconds: int = 7 * 86400  # how long services may resume the event stream

    def cutoffs(self, now: datetime) -> dict[Purgeable, datetime]:
        """For each kind that is purged, the moment before which its rows go."""
        cutoffs: dict[Purgeable, datetime] = {}
        if self.audit_days:
            cutoffs[Purgeable.AUDIT_EVENTS] = now - timedelta(days=self.audit_days)
        if self.session_days:
            ended = now - timedelta(days=self.session_days)
            cutoffs[Purgeable.EXPIRED_SESSIONS] = ended
            cutoffs[Purgeable.REVOKED_SESSIONS] = ended
        cutoffs[Purgeable.VERIFICATION_TOKENS] = now - ONE_TIME_TOKEN_RETENTION
        cutoffs[Purgeable.RESET_TOKENS] = now - ONE_TIME_TOKEN_RETENTION
        cutoffs[Purgeable.INVITATION_TOKENS] = now - ONE_TIME_TOKEN_RETENTION
        cutoffs[Purgeable.EMAIL_CHANGE_TOKENS] = now - ONE_TIME_TOKEN_RETENTION
        cutoffs[Purgeable.SENT_EMAILS] = now - SENT_EMAIL_RETENTION
        cutoffs[Purgeable.FAILED_EMAILS] = now - FAILED_EMAIL_RETENTION
        cutoffs[Purgeable.STREAM_EVENTS] = now - timedelta(seconds=self.event_seconds)
        return cutoffs


@dataclass(frozen=True, slots=True)
class PurgeReport:
    deleted: dict[Purgeable, int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())
