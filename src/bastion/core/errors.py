"""The root of Bastion's domain error tree.

Feature packages subclass these in their own ``errors.py``; ``http/errors.py`` maps each class to
an HTTP status and a stable code. Nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class BastionError(Exception):
    """Base of every error a use case raises on purpose."""

    detail: str = "The request could not be completed."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail:
            self.detail = detail

    def extensions(self) -> dict[str, Any]:
        """Members the problem document carries beside the standard ones (RFC 9457 §3.2)."""
        return {}


class NotFound(BastionError):
    """The thing asked for does not exist or is not the caller's to see."""

    detail = "Not found."


class Conflict(BastionError):
    """The request conflicts with the current state."""


class Unauthenticated(BastionError):
    """The caller did not prove who they are."""


class Forbidden(BastionError):
    """The caller is known but not allowed to do this."""

    detail = "You are not allowed to do this."


class StorageUnavailable(BastionError):
    """The database cannot be reached; the request may be retried later."""

    detail = "The service is temporarily unavailable. Please try again shortly."
