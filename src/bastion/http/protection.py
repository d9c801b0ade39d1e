"""The HTTP side of abuse protection: RateLimit headers and the device cookie."""

from __future__ import annotations

from fastapi import Request, Response

from bastion.core.email_address import InvalidEmailAddress, normalize_email
from bastion.ratelimit.errors import RateLimited
from bastion.ratelimit.model import Usage

DEVICE_COOKIE = "bastion_device"
DEVICE_COOKIE_PATH = "/api/v1/auth/login"
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers accept
# RequestMiddleware copies these onto the response, error responses included.
RATE_LIMIT_HEADERS = "rate_limit_headers"


def enforce(request: Request, usage: Usage) -> None:
    """Announce ``usage`` in the RateLimit-* headers and refuse the request if it is over.

    When several limits apply, the headers describe the one closest to running out.
    """
    shown: Usage | None = getattr(request.state, "rate_limit", None)
    if shown is None or usage.remaining < shown.remaining or not usage.allowed:
        request.state.rate_limit = usage
        setattr(
            request.state,
            RATE_LIMIT_HEADERS,
            {
                "RateLimit-Limit": str(usage.limit),
                "RateLimit-Remaining": str(usage.remaining),
                "RateLimit-Reset": str(usage.reset_after),
            },
        )
    if not usage.allowed:
        raise RateLimited(usage.reset_after)


async def email_in_body(request: Request) -> str | None:
    """The ``email`` member of the JSON body in its canonical form, read before the route
    validates it (FastAPI has already parsed the body, so this costs no second read); None when
    there is none or it is no address, which the route's validation then refuses."""
    try:
        payload = await request.json()
    except ValueError:
        return None
    email = payload.get("email") if isinstance(payload, dict) else None
    if not isinstance(email, str):
        return None
    try:
        return normalize_email(email)
    except InvalidEmailAddress:
        return None


def set_device_cookie(response: Response, value: str, secure: bool) -> None:
    """Mark this browser as one that signed in to the account, for account protection."""
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path=DEVICE_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
