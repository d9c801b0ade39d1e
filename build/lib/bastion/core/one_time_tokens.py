"""Single-use tokens mailed as links (email verification, password reset)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from bastion.core.errors import BastionError


class TokenInvalid(BastionError):
    """The link's token is unknown or was already used."""

    detail = "This link is invalid or has already been used."


class TokenExpired(BastionError):
    """The link's token is past its lifetime."""

    detail = "This link has expired. Please request a new one"


@dataclass(frozen=True, slots=True)
class OneTimeToken:
    token_hash: str
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


def ensure_usable(token: OneTimeToken | None, now: datetime) -> OneTimeToken:
    """The token if it may be spent now; otherwise the error the user should see."""
    if token is None or token.used_at is not None:
        raise TokenInvalid()
    if now >= token.expires_at:
        raise TokenExpired()
    return token
