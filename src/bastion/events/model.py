"""What other services are told happened: CAEP-style events, and the rules of their stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# How often the stream says it is still there when nothing happens: proxies drop idle
# connections, and the verifier reconnects after 60 s of silence.
HEARTBEAT_SECONDS = 15.0
# What the stream tells a client to wait before reconnecting, in milliseconds.
RETRY_MS = 250
# Events read from the table at a time.
BATCH = 500


class StreamEventType(StrEnum):
    SESSION_REVOKED = "session.revoked"
    USER_DISABLED = "user.disabled"
    USER_DELETED = "user.deleted"
    USER_ROLE_CHANGED = "user.role_changed"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - a label, not a secret
    PASSWORD_RESET = "password.reset"  # noqa: S105 - a label, not a secret
    MFA_CHANGED = "mfa.changed"
    SIGNING_KEY_REVOKED = "signing_key.revoked"
    USER_REGISTERED = "user.registered"
    USER_VERIFIED = "user.verified"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    type: StreamEventType
    occurred_at: datetime
    # The event's own fields (``sid``, ``user_id``, ``kid``), without type and time.
    fields: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def payload(self) -> dict[str, Any]:
        """What a client receives: ``type``, ``occurred_at`` (ISO 8601, UTC) and the fields."""
        return {
            "type": self.type.value,
            "occurred_at": self.occurred_at.isoformat(),
            **self.fields,
        }


def to_the_second(now: datetime) -> datetime:
    """An event's time as tokens count it: ``iat`` is in whole seconds, and a verifier voids a
    user's tokens issued before a change. Counted to the microsecond, the change would also void
    a token issued just after it in the same second (a refresh right after a password change)
    for its whole life. Tokens of that second issued before the change belong to sessions the
    change ended (told by ``session.revoked``), or to the session it kept on purpose."""
    return now.replace(microsecond=0)


def user_event(kind: StreamEventType, user_id: uuid.UUID, now: datetime) -> StreamEvent:
    return StreamEvent(kind, to_the_second(now), {"user_id": str(user_id)})


def sessions_revoked(
    user_id: uuid.UUID, session_ids: Iterable[uuid.UUID], now: datetime
) -> list[StreamEvent]:
    """One ``session.revoked`` per ended session."""
    return [
        StreamEvent(
            StreamEventType.SESSION_REVOKED,
            to_the_second(now),
            {"sid": str(sid), "user_id": str(user_id)},
        )
        for sid in session_ids
    ]


def signing_key_revoked(kid: str, now: datetime) -> StreamEvent:
    """What a use case that revokes a signing key publishes in its transaction."""
    return StreamEvent(StreamEventType.SIGNING_KEY_REVOKED, to_the_second(now), {"kid": kid})


def frame(event: StreamEvent) -> bytes:
    """One event in the text/event-stream format: ``id:``, ``event:`` and one ``data:`` line."""
    data = json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=True)
    return f"id: {event.id}\nevent: {event.type.value}\ndata: {data}\n\n".encode()


def opening(newest: int) -> bytes:
    """The first bytes of a stream: the reconnection delay, and a comment."""
    return f"retry: {RETRY_MS}\n: stream open at {newest}\n\n".encode()


KEEPALIVE = b": keepalive\n\n"


def parse_position(value: str | None) -> int | None:
    """A ``Last-Event-ID`` as an event id, None without one; ValueError if it is not one of ours."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ValueError(value)
    return int(value)


@dataclass(frozen=True, slots=True)
class Position:
    """What the table says about a position a client asks to resume from."""

    newest: int  # the newest event's id (0 when there is none)
    oldest: int | None  # the oldest kept event's id
    occurred_at: datetime | None  # when the event at the position happened, if it is kept


def resumable(position: int, found: Position, now: datetime, retention: timedelta) -> bool:
    """Whether every event after ``position`` is still kept, so the stream can resume there.

    A position past the newest event (another database, or one restored from a backup) cannot
    be trusted either: the client must resync.
    """
    if position > found.newest:
        return False
    if found.occurred_at is not None:
        return found.occurred_at >= now - retention
    # The event itself is gone (purged, or an id a rolled-back transaction never used): fine
    # only if nothing older than it has been purged since.
    return found.oldest is not None and position >= found.oldest - 1 and position > 0


@dataclass
class Gap:
    """Ids that a stream has not seen yet though later ones committed.

    A transaction that took an id may commit after one that took a later id: its event is
    waited for until ``GAP_WAIT_SECONDS``, then the gap is passed (a rolled-back transaction
    leaves one for good).
    """

    first_seen: float | None = None


GAP_WAIT_SECONDS = 2.0


def deliverable(cursor: int, ids: list[int], gap: Gap, now: float) -> int:
    """How many of ``ids`` (ascending, all after ``cursor``) to send now: those that follow the
    cursor without a hole, or every one once a hole has stayed open for ``GAP_WAIT_SECONDS``."""
    count = 0
    expected = cursor + 1
    for event_id in ids:
        if event_id != expected:
            break
        count += 1
        expected += 1
    if count == len(ids):
        gap.first_seen = None
        return count
    if count:
        gap.first_seen = None
        return count
    if gap.first_seen is None:
        gap.first_seen = now
        return 0
    if now - gap.first_seen >= GAP_WAIT_SECONDS:
        gap.first_seen = None
        return len(ids)
    return 0
