from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking, as far as the network can tell: recorded on sessions and audit events."""

    ip: str | None = None
    user_agent: str | None = None
