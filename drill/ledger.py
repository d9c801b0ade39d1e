"""What the drill's client saw: every request's outcome, and every fact Bastion acknowledged.

The client is the judge. A fact enters the ledger only when Bastion acknowledged it (a 2xx);
afterwards every fact is checked against the database and the SMTP sink. When a request that
changes state gets no clear answer (a 503, a dropped connection, a timeout), its effect is in
doubt: the client stops using that user or session and checks only what that request could
not have undone.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    OK = "ok"  # the answer the ledger expected
    CLEAN = "clean"  # a clean failure: 503 with Retry-After, or 429
    CONNECTION = "connection"  # no answer: refused, reset or closed (judged against the faults)
    VIOLATION = "violation"  # a 500, a wrong 401/403, a false reuse, a hang, ...


@dataclass(frozen=True)
class Record:
    """One request: what was asked, when, and how it ended."""

    op: str
    started: float  # time.monotonic()
    seconds: float
    status: int | None  # None: no HTTP answer
    verdict: Verdict
    detail: str = ""  # the problem code, the transport error, or why it is a violation


@dataclass
class Session:
    id: uuid.UUID
    access_token: str
    refresh_token: str | None
    issued_at: float
    # Refresh tokens this session has spent with an acknowledged rotation.
    spent: list[str] = field(default_factory=list)
    revoked: bool = False  # by an acknowledged logout, reset or deactivation
    in_doubt: bool = False  # a request on it got no clear answer; no longer used or judged


@dataclass
class User:
    email: str
    password: str
    id: uuid.UUID | None = None
    registered: bool = False  # 202 seen
    verified: bool = False  # 200 on the verification link
    deactivated: bool = False  # 200 on the admin's PATCH
    in_doubt: bool = False  # a state change got no clear answer: retired
    busy: bool = False  # one request at a time per user, as a person would
    sessions: list[Session] = field(default_factory=list)
    # Emails Bastion promised with an acknowledged request, by kind.
    promised: Counter[str] = field(default_factory=Counter)
    reset_wanted: bool = False  # a forgot-password was acknowledged; its link is awaited
    used_reset_tokens: set[str] = field(default_factory=set)
    # Acknowledged resets: (new password, when acknowledged).
    resets: list[tuple[str, float]] = field(default_factory=list)
    # When the deactivation was acknowledged.
    deactivated_at: float | None = None

    def live_sessions(self) -> list[Session]:
        return [s for s in self.sessions if not s.revoked and not s.in_doubt]


@dataclass
class Ledger:
    records: list[Record] = field(default_factory=list)
    users: list[User] = field(default_factory=list)

    def record(self, record: Record) -> None:
        self.records.append(record)
