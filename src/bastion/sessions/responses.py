"""The answer that hands out tokens, to a log-in and to a refresh: the access token in the body,
the refresh token in a cookie."""

from __future__ import annotations

import uuid

from fastapi import Response
from pydantic import BaseModel, Field

from bastion.sessions.service import IssuedTokens

REFRESH_COOKIE = "bastion_refresh"
COOKIE_PATH = "/api/v1/auth"


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a label, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")
    session_id: uuid.UUID


def token_response(issued: IssuedTokens, response: Response, secure: bool) -> TokenResponse:
    if issued.refresh_token is not None:
        # The cookie ends with the session: rotation never extends it.
        remaining = issued.session.expires_at - issued.session.last_seen_at
        response.headers.append(
            "set-cookie",
            refresh_cookie(issued.refresh_token, int(remaining.total_seconds()), secure=secure),
        )
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        session_id=issued.session.id,
    )


def clear_refresh_cookie(response: Response, secure: bool) -> None:
    response.headers.append("set-cookie", refresh_cookie("", 0, secure=secure))


def refresh_cookie(value: str, max_age: int, *, secure: bool) -> str:
    """The refresh cookie's Set-Cookie value, attributes spelled as the documentation shows
    them (Starlette would lower-case ``SameSite``). Tokens are URL-safe, so need no quoting."""
    secure_attribute = " Secure;" if secure else ""
    return (
        f"{REFRESH_COOKIE}={value}; HttpOnly;{secure_attribute} SameSite=Strict; "
        f"Path={COOKIE_PATH}; Max-Age={max(max_age, 0)}"
    )
