from __future__ import annotations

from bastion.core.errors import NotFound, Unauthenticated


class InvalidToken(Unauthenticated):
    """The bearer token is missing, malformed, forged or not meant for us."""

    detail = "The access token is invalid."


class AccessTokenExpired(Unauthenticated):
    """The bearer token is past its expiry."""

    detail = "The access token has expired."


class SigningKeyNotFound(NotFound):
    """No signing key has this kid, or it was revoked already."""

    detail = "No signing key with this kid is in use."
