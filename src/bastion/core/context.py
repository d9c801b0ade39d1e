"""Who is asking: what the network tells, and what an access token proves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, as far as the network can tell: recorded on sessions and audit events."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a verified access token whose session is live."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    email: str
    role: str
    expires_at: int
