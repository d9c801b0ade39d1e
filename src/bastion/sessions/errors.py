from __future__ import annotations

from bastion.core.errors import NotFound, Unauthenticated


class SessionRevoked(Unauthenticated):
    """The token's session was ended (logout, revocation, password change)."""

    detail = "This session has ended. Please sign in again."


class InvalidRefreshToken(Unauthenticated):
    """The refresh token is missing, unknown, or its session is over."""

    detail = "The refresh token is invalid or has expired."


class RefreshTokenReused(Unauthenticated):
    """A refresh token was presented again after rotation: the session is revoked."""

    detail = "This refresh token was already used; the session has been ended for safety."


class SessionNotFound(NotFound):
    """No such session among the caller's."""

    detail = "Session not found."
