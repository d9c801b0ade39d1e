"""Route guards: the endpoint rate limits and the cross-site check as FastAPI dependencies, and
the RateLimit-* headers.

The rules and the counting live in ``ratelimit/``; this is their HTTP side, shared by every
feature's routes.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from bastion.core.errors import Forbidden
from bastion.http.deps import CurrentPrincipal, provided
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.middleware import RATE_LIMIT_HEADERS
from bastion.http.schemas import EmailRequest
from bastion.ratelimit.errors import RateLimited
from bastion.ratelimit.model import Rule, Usage
from bastion.ratelimit.service import RateLimits
from bastion.settings import Settings


class CsrfRejected(Forbidden):
    """A cookie-authenticated request or a page's form post came from an origin we do not
    trust."""

    detail = "Cross-site request rejected."


PROBLEMS: ProblemRows = {
    RateLimited: ProblemType(429, "RATE_LIMITED", "Too many requests"),
    CsrfRejected: ProblemType(403, "CSRF_REJECTED", "Cross-site request rejected"),
}


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


# The limits read RateLimits directly rather than through a sub-dependency: they run on most
# requests, and each dependency level costs FastAPI measurable time.


@raises(RateLimited)
async def limit_per_ip(request: Request) -> None:
    """The general limit on unauthenticated auth endpoints, per client IP."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_ip(limits.rules.per_ip, request.state.client_ip))


@raises(RateLimited)
async def limit_per_user(request: Request, principal: CurrentPrincipal) -> None:
    """The general limit on authenticated auth endpoints, per user."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))


@raises(RateLimited)
async def limit_exports(request: Request, principal: CurrentPrincipal) -> None:
    """The data-export limit, per user."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.export, principal.user_id))


@raises(RateLimited)
async def limit_registrations(request: Request) -> None:
    """The general per-IP limit, then the registration limit: one round trip for both."""
    limits = provided(request, RateLimits)
    rules = [limits.rules.per_ip, limits.rules.register]
    for usage in await limits.per_ip_in_turn(rules, request.state.client_ip):
        enforce(request, usage)


@raises(RateLimited)
async def limit_password_resets(request: Request, body: EmailRequest) -> EmailRequest:
    """The forgot-password limit per address; see ``PasswordResetRequest``."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_email(limits.rules.forgot_password, body.email))
    return body


@raises(RateLimited)
async def limit_verification_resends(request: Request, body: EmailRequest) -> EmailRequest:
    """The verification-resend limit per address; see ``VerificationResendRequest``."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_email(limits.rules.verification_resend, body.email))
    return body


async def limit_per_email(request: Request, rule: Rule, email: str) -> None:
    """Count a request about ``email`` (canonical) against ``rule``: the pages, whose bodies
    are forms, call it with the address their form gave, once it is valid."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_email(rule, email))


@raises(CsrfRejected)
async def reject_cross_site(request: Request) -> None:
    """Cookie-authenticated requests and form posts must come from our own pages or an allowed
    origin."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return
    parts = urlsplit(source)
    origin = f"{parts.scheme}://{parts.netloc}"
    settings = provided(request, Settings)
    if origin not in {settings.public_origin, *settings.allowed_origins}:
        raise CsrfRejected()


SameSiteOnly = Depends(reject_cross_site)
PerIpLimit = Depends(limit_per_ip)
PerUserLimit = Depends(limit_per_user)
ExportLimit = Depends(limit_exports)
RegistrationLimit = Depends(limit_registrations)
# A limit keyed on an address takes the body as the route's parameter: FastAPI calls a
# dependency only once its own parameters are valid, so the address counted is the validated,
# canonical one the use case looks up, and a request refused with 422 counts against no one.
PasswordResetRequest = Annotated[EmailRequest, Depends(limit_password_resets)]
VerificationResendRequest = Annotated[EmailRequest, Depends(limit_verification_resends)]
