"""Token verification, refresh, logout and the caller's sessions; the app's authenticator."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from bastion.core.context import Principal
from bastion.guards import PerIpLimit, PerUserLimit, SameSiteOnly
from bastion.http.deps import ContextDep, CurrentPrincipal, provided, provider
from bastion.http.errors import ProblemRows, ProblemType, raised_by, raises
from bastion.sessions.authentication import Authenticator
from bastion.sessions.errors import (
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    SessionRevoked,
)
from bastion.sessions.responses import (
    REFRESH_COOKIE,
    TokenResponse,
    clear_refresh_cookie,
    token_response,
)
from bastion.sessions.service import SessionService
from bastion.settings import Settings
from bastion.tokens.errors import AccessTokenExpired, InvalidToken

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])
PROBLEMS: ProblemRows = {
    SessionRevoked: ProblemType(401, "SESSION_REVOKED", "Session revoked", bearer=True),
    InvalidRefreshToken: ProblemType(401, "INVALID_REFRESH_TOKEN", "Invalid refresh token"),
    RefreshTokenReused: ProblemType(401, "REFRESH_TOKEN_REUSED", "Refresh token reused"),
    SessionNotFound: ProblemType(404, "SESSION_NOT_FOUND", "Session not found"),
}
SessionsDep = Annotated[SessionService, Depends(provider(SessionService))]
SettingsDep = Annotated[Settings, Depends(provider(Settings))]


class TokenInfo(BaseModel):
    sub: uuid.UUID
    email: str
    role: str
    sid: uuid.UUID
    exp: int
    aal: str = Field(description="`aal1`, or `aal2` after a second factor or a passkey")
    amr: list[str] = Field(description='RFC 8176 authentication methods, e.g. `["pwd"]`')
    auth_time: int = Field(description="When the session last proved who it is (Unix time)")


class SessionInfo(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    remember_me: bool
    current: bool
    aal: str


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("A bearer access token is required.")
    return token.strip()


@raises(InvalidToken, AccessTokenExpired, SessionRevoked)
async def authenticate(request: Request) -> Principal:
    """The caller behind the request's bearer token: the app's authenticator, which serves
    ``CurrentPrincipal``."""
    authenticator = provided(request, Authenticator)
    return await authenticator.authenticate(bearer_token(request))


@router.post(
    "/refresh",
    dependencies=[SameSiteOnly, PerIpLimit],
    summary="Trade the refresh cookie for a new access token (the cookie rotates)",
)
@raises(InvalidRefreshToken, RefreshTokenReused)
async def refresh(
    request: Request,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    context: ContextDep,
) -> TokenResponse:
    issued = await sessions.refresh(request.cookies.get(REFRESH_COOKIE), context)
    return token_response(issued, response, settings.cookie_secure)


@raises(*raised_by(authenticate))
async def verify_token(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return JSONResponse(
        {
            "sub": str(principal.user_id),
            "email": principal.email,
            "role": principal.role,
            "sid": str(principal.session_id),
            "exp": principal.expires_at,
            "aal": principal.aal,
            "amr": list(principal.amr),
            "auth_time": principal.auth_time,
        }
    )


# Resource servers call this on every request they serve, so it is a plain Starlette route:
# FastAPI's dependency resolution and response handling would double its cost. The body is
# built directly; TokenInfo documents it through VERIFY_TOKEN_DOCS.
# (add_route, unlike the decorators, does not apply the router's prefix.)
VERIFY_TOKEN_PATH = f"{router.prefix}/verify-token"
router.add_route(VERIFY_TOKEN_PATH, verify_token, methods=["GET"], include_in_schema=False)
VERIFY_TOKEN_DOCS = APIRoute(
    VERIFY_TOKEN_PATH,
    verify_token,
    methods=["GET"],
    response_model=TokenInfo,
    summary="Validate a bearer token, including that its session is live",
    tags=["sessions"],
)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[SameSiteOnly, PerUserLimit],
    summary="End the current session and clear the refresh cookie",
)
async def logout(
    principal: CurrentPrincipal,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    context: ContextDep,
) -> None:
    await sessions.logout(principal, context)
    clear_refresh_cookie(response, settings.cookie_secure)


@router.get(
    "/sessions",
    dependencies=[PerUserLimit],
    summary="The caller's active sessions",
)
async def list_sessions(principal: CurrentPrincipal, sessions: SessionsDep) -> list[SessionInfo]:
    return [
        SessionInfo(
            id=s.id,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            expires_at=s.expires_at,
            ip=s.ip,
            user_agent=s.user_agent,
            remember_me=s.remember_me,
            current=s.id == principal.session_id,
            aal=s.aal,
        )
        for s in await sessions.list_sessions(principal.user_id)
    ]


@router.delete(
    "/sessions/all",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PerUserLimit],
    summary="Log out all devices, this one included",
)
async def revoke_all_sessions(
    principal: CurrentPrincipal,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    context: ContextDep,
) -> None:
    await sessions.revoke_all(principal, context)
    clear_refresh_cookie(response, settings.cookie_secure)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PerUserLimit],
    summary="End one of the caller's sessions",
)
@raises(SessionNotFound)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, sessions: SessionsDep, context: ContextDep
) -> None:
    await sessions.revoke_session(principal, session_id, context)
