"""FastAPI dependencies, as Annotated aliases: the only way routes reach services and callers.

Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and
that hand-off would cost more than the work they do.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from bastion.bootstrap import Services
from bastion.core.context import RequestContext
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


ServicesDep = Annotated[Services, Depends(get_services)]
ContextDep = Annotated[RequestContext, Depends(get_request_context)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
SameSiteOnly = Depends(reject_cross_site)
