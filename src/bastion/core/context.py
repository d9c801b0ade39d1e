"""Who is asking: what the network tells, what an access token proves, and which state of their
account a credential check saw."""

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
    # How the session last proved who it is (``aal1``/``aal2``, RFC 8176 ``amr`` values) and
    # when, as a Unix time: what step-up checks judge.
    aal: str = "aal1"
    amr: tuple[str, ...] = ("pwd",)
    auth_time: int = 0


@dataclass(frozen=True, slots=True)
class SecurityStamp:
    """An account's security state as a credential check saw it: the account and the version of
    everything a log-in decides on (password, role, active, verified; later the email and the
    second factors).

    A step that acts on an earlier step's check (starting the session after the password, or
    after a second factor; changing the password after confirming the current one) carries the
    stamp and writes only while the account still has it.
    """

    user_id: uuid.UUID
    version: int
