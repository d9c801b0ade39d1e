"""FastAPI dependencies every feature's routes share, as Annotated aliases, and the registry
through which a route reaches the one service it needs.

Every dependency is ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, and
that hand-off would cost more than the work they do.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Request

from bastion.core.context import Principal, RequestContext

T = TypeVar("T")
# How the app tells who is behind a request's credentials (installed at start-up).
Authenticate = Callable[[Request], Awaitable[Principal]]
# How the app judges that a caller proved who they are recently enough for a critical change
# (installed at start-up; it raises the refusal).
EnsureRecent = Callable[[Request, Principal], Awaitable[None]]


def provide(app: FastAPI, kind: type[T], instance: T) -> None:
    """Make ``instance`` the app's ``kind``: what ``provided`` and ``provider`` hand out."""
    if not hasattr(app.state, "provided"):
        app.state.provided = {}
    app.state.provided[kind] = instance


def provided(request: Request, kind: type[T]) -> T:
    """The app's ``kind``, for the dependencies that run on every request and read it directly
    (each dependency level costs FastAPI measurable time)."""
    instance: T = request.app.state.provided[kind]
    return instance


@functools.cache
def provider(kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency handing a route the app's ``kind``; one per kind, so a request that needs it
    twice resolves it once."""

    async def dependency(request: Request) -> T:
        return provided(request, kind)

    return dependency


def install_authenticator(app: FastAPI, authenticate: Authenticate) -> None:
    app.state.authenticate = authenticate


async def current_principal(request: Request) -> Principal:
    """The caller, as the app's authenticator judges the request's credentials."""
    authenticate: Authenticate = request.app.state.authenticate
    return await authenticate(request)


def install_recency_check(app: FastAPI, ensure_recent: EnsureRecent) -> None:
    app.state.ensure_recent = ensure_recent


async def recent_principal(request: Request, principal: CurrentPrincipal) -> Principal:
    """The caller, once the step-up rule passed: their session proved who they are within
    ``REAUTH_MAX_AGE``, at aal2 when they have a second factor (else 403
    ``REAUTHENTICATION_REQUIRED`` with ``aal_required``)."""
    ensure_recent: EnsureRecent = request.app.state.ensure_recent
    await ensure_recent(request, principal)
    return principal


async def get_request_context(request: Request) -> RequestContext:
    return RequestContext(
        ip=request.state.client_ip,
        user_agent=request.headers.get("user-agent"),
    )


ContextDep = Annotated[RequestContext, Depends(get_request_context)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
# For critical changes (password, factors, recovery codes, email, export, account deletion,
# admin writes): the current user, after the recent-authentication rule passed.
RecentUser = Annotated[Principal, Depends(recent_principal)]
