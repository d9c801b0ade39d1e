"""FastAPI dependencies, as Annotated aliases: the only way routes reach services and callers.

Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and
that hand-off would cost more than the work they do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from bastion.admin.model import Permission, allows
from bastion.bootstrap import Services
from bastion.core.context import RequestContext
from bastion.core.errors import Forbidden
from bastion.http.protection import email_in_body, enforce
from bastion.ratelimit.model import Rule
from bastion.sessions.errors import CsrfRejected
from bastion.sessions.service import Principal
from bastion.tokens.errors import InvalidToken


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip=request.state.client_ip,
        user_agent=request.headers.get("user-agent"),
    )


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("A bearer access token is required.")
    return token.strip()


async def current_principal(request: Request) -> Principal:
    # Reads the services directly rather than through a sub-dependency: this runs on every
    # authenticated request, and each dependency level costs FastAPI measurable time.
    services: Services = request.app.state.services
    principal = await services.sessions.authenticate(bearer_token(request))
    request.state.principal = principal
    return principal


async def reject_cross_site(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> None:
    """Cookie-authenticated requests must come from our own pages or an allowed origin."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return
    parts = urlsplit(source)
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = {services.settings.public_origin, *services.settings.allowed_origins}
    if origin not in allowed:
        raise CsrfRejected()


def requiring(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting callers whose role grants ``permission`` (else 403)."""

    async def authorized(request: Request) -> Principal:
        principal = await current_principal(request)
        if not allows(principal.role, permission):
            raise Forbidden()
        return principal

    return authorized


ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(get_request_context)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
SameSiteOnly = Depends(reject_cross_site)
# Role changes end the user's sessions, so the role claimed by a live token is current.
AdminUser = Annotated[Principal, Depends(requiring(Permission.MANAGE_USERS))]
StaffUser = Annotated[Principal, Depends(requiring(Permission.READ_USERS))]
AuditReader = Annotated[Principal, Depends(requiring(Permission.READ_AUDIT))]


async def limit_per_ip(request: Request, services: ServicesDep) -> None:
    """The general limit on unauthenticated auth endpoints, per client IP."""
    limits = services.limits
    enforce(request, await limits.per_ip(limits.rules.per_ip, request.state.client_ip))


async def limit_per_user(
    request: Request, services: ServicesDep, principal: CurrentPrincipal
) -> None:
    """The general limit on authenticated auth endpoints, per user."""
    limits = services.limits
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))


async def limit_registrations(request: Request, services: ServicesDep) -> None:
    """The general per-IP limit, then the registration limit: one round trip for both."""
    limits = services.limits
    rules = [limits.rules.per_ip, limits.rules.register]
    for usage in await limits.per_ip_in_turn(rules, request.state.client_ip):
        enforce(request, usage)


async def limit_password_resets(request: Request, services: ServicesDep) -> None:
    await _limit_per_email(request, services, services.limits.rules.forgot_password)


async def limit_verification_resends(request: Request, services: ServicesDep) -> None:
    await _limit_per_email(request, services, services.limits.rules.verification_resend)


async def _limit_per_email(request: Request, services: Services, rule: Rule) -> None:
    email = await email_in_body(request)
    if email is not None:
        enforce(request, await services.limits.per_email(rule, email))


PerIpLimit = Depends(limit_per_ip)
PerUserLimit = Depends(limit_per_user)
RegistrationLimit = Depends(limit_registrations)
PasswordResetLimit = Depends(limit_password_resets)
VerificationResendLimit = Depends(limit_verification_resends)
