"""Why a request was refused: one tree of errors, each with its HTTP status and stable code.

The FastAPI integration and the ASGI middleware render them as RFC 9457 problems; code that
calls ``Verifier.verify`` directly catches ``VerifierError``.
"""

from __future__ import annotations

from typing import ClassVar


class VerifierError(Exception):
    """Base of every error the verifier raises on purpose."""

    status: ClassVar[int] = 401
    code: ClassVar[str] = "UNAUTHENTICATED"
    title: ClassVar[str] = "Authentication required"
    detail: str = "A bearer access token is required."
    # The RFC 6750 ``error`` of the WWW-Authenticate challenge; None sends a bare challenge.
    bearer_error: ClassVar[str | None] = None

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail:
            self.detail = detail


class TokenMissing(VerifierError):
    """The request carries no bearer token."""


class InvalidToken(VerifierError):
    """The token is malformed, forged, signed by an unknown key or meant for someone else."""

    code = "INVALID_TOKEN"
    title = "Invalid access token"
    detail = "The access token is invalid."
    bearer_error = "invalid_token"


class TokenExpired(InvalidToken):
    """The token is past its expiry."""

    code = "TOKEN_EXPIRED"
    title = "Access token expired"
    detail = "The access token has expired."


class TokenRevoked(InvalidToken):
    """Bastion revoked the token: its session, its user's earlier tokens, or its signing key."""

    code = "TOKEN_REVOKED"
    title = "Access token revoked"
    detail = "The access token has been revoked."


class InsufficientAuthentication(VerifierError):
    """The token is valid but its authentication is too weak or too old (RFC 9470)."""

    code = "INSUFFICIENT_USER_AUTHENTICATION"
    title = "Stronger or more recent authentication required"
    detail = "This request needs a stronger or more recent authentication."
    bearer_error = "insufficient_user_authentication"

    def __init__(
        self, detail: str | None = None, *, acr_values: str | None, max_age: int | None
    ) -> None:
        super().__init__(detail)
        # RFC 9470 challenge parameters: what would satisfy the resource server.
        self.acr_values = acr_values
        self.max_age = max_age


class InsufficientRole(VerifierError):
    """The token is valid but its role may not do this."""

    status = 403
    code = "FORBIDDEN"
    title = "Forbidden"
    detail = "You are not allowed to do this."


class IssuerUnavailable(VerifierError):
    """Bastion could not be reached to fetch its keys or to check the token; retry later."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    title = "Service unavailable"
    detail = "The token cannot be checked right now. Please try again shortly."
