from __future__ import annotations

from bastion.core.errors import BastionError


class RateLimited(BastionError):
    """Too many requests for this endpoint from this caller; retry after ``retry_after``."""

    detail = "Too many requests. Please try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TooManyAttempts(RateLimited):
    """Attempts at a password (log-ins, and signed-in users confirming theirs) from this
    address or on this account are paused after repeated failures."""

    detail = "Too many attempts. Please try again later"
