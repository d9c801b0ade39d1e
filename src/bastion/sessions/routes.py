"""Log-in, token verification, refresh, logout and the caller's sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from bastion.http.deps import (
    ContextDep,
    CurrentPrincipal,
    PerIpLimit,
    PerUserLimit,
    SameSiteOnly,
    ServicesDep,
    current_principal,
)
from bastion.http.errors import openapi_responses
from bastion.http.fields import EmailAddress
from bastion.http.protection import DEVICE_COOKIE, enforce, set_device_cookie
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.sessions.errors import (
    AccountDisabled,
    CsrfRejected,
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    SessionRevoked,
)
from bastion.sessions.service import IssuedTokens
from bastion.tokens.errors import AccessTokenExpired, InvalidToken

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])
REFRESH_COOKIE = "bastion_refresh"
COOKIE_PATH = "/api/v1/auth"
BEARER_ERRORS = (InvalidToken, AccessTokenExpired, SessionRevoked)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(examples=["alice@example.com"])
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Correct-Horse-7"])
    remember_me: bool = False


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a label, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")
    session_id: uuid.UUID


class TokenInfo(BaseModel):
    sub: uuid.UUID
    email: str
    role: str
    sid: uuid.UUID
    exp: int


class SessionInfo(BaseModel):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    remember_me: bool
    current: bool


@router.post(
    "/login",
    responses=openapi_responses(
        InvalidCredentials, EmailNotVerified, AccountDisabled, TooManyAttempts, RateLimited
    ),
    summary="Log in; remember_me also sets a 30-day refresh cookie",
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    context: ContextDep,
) -> TokenResponse:
    protection = services.login_protection
    # The per-IP request limit is counted with the attempt's lockout slots, in one round trip.
    admission = await protection.admit(body.email, context, request.cookies.get(DEVICE_COOKIE))
    enforce(request, admission.usage)
    result = await protection.login(admission, body.password, body.remember_me, context)
    set_device_cookie(response, result.device_cookie, services.settings.cookie_secure)
    return _token_response(result.tokens, response, services.settings.cookie_secure)


@router.post(
    "/refresh",
    responses=openapi_responses(InvalidRefreshToken, RefreshTokenReused, CsrfRejected, RateLimited),
    dependencies=[SameSiteOnly, PerIpLimit],
    summary="Trade the refresh cookie for a new access token (the cookie rotates)",
)
async def refresh(
    request: Request, response: Response, services: ServicesDep, context: ContextDep
) -> TokenResponse:
    issued = await services.sessions.refresh(request.cookies.get(REFRESH_COOKIE), context)
    return _token_response(issued, response, services.settings.cookie_secure)


async def verify_token(request: Request) -> JSONResponse:
    principal = await current_principal(request)
    return JSONResponse(
        {
            "sub": str(principal.user_id),
            "email": principal.email,
            "role": principal.role,
            "sid": str(principal.session_id),
            "exp": principal.expires_at,
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
    responses=openapi_responses(*BEARER_ERRORS),
    summary="Validate a bearer token, including that its session is live",
    tags=["sessions"],
)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=openapi_responses(*BEARER_ERRORS, CsrfRejected, RateLimited),
    dependencies=[SameSiteOnly, PerUserLimit],
    summary="End the current session and clear the refresh cookie",
)
async def logout(
    principal: CurrentPrincipal, response: Response, services: ServicesDep, context: ContextDep
) -> None:
    await services.sessions.logout(principal, context)
    _clear_refresh_cookie(response, services.settings.cookie_secure)


@router.get(
    "/sessions",
    responses=openapi_responses(*BEARER_ERRORS, RateLimited),
    dependencies=[PerUserLimit],
    summary="The caller's active sessions",
)
async def list_sessions(principal: CurrentPrincipal, services: ServicesDep) -> list[SessionInfo]:
    sessions = await services.sessions.list_sessions(principal.user_id)
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
        )
        for s in sessions
    ]


@router.delete(
    "/sessions/all",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=openapi_responses(*BEARER_ERRORS, RateLimited),
    dependencies=[PerUserLimit],
    summary="Log out all devices, this one included",
)
async def revoke_all_sessions(
    principal: CurrentPrincipal, response: Response, services: ServicesDep, context: ContextDep
) -> None:
    await services.sessions.revoke_all(principal, context)
    _clear_refresh_cookie(response, services.settings.cookie_secure)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=openapi_responses(*BEARER_ERRORS, SessionNotFound, RateLimited),
    dependencies=[PerUserLimit],
    summary="End one of the caller's sessions",
)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, services: ServicesDep, context: ContextDep
) -> None:
    await services.sessions.revoke_session(principal, session_id, context)


def _token_response(issued: IssuedTokens, response: Response, secure: bool) -> TokenResponse:
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


def _clear_refresh_cookie(response: Response, secure: bool) -> None:
    response.headers.append("set-cookie", refresh_cookie("", 0, secure=secure))


def refresh_cookie(value: str, max_age: int, *, secure: bool) -> str:
    """The refresh cookie's Set-Cookie value, attributes spelled as the documentation shows
    them (Starlette would lower-case ``SameSite``). Tokens are URL-safe, so need no quoting."""
    secure_attribute = " Secure;" if secure else ""
    return (
        f"{REFRESH_COOKIE}={value}; HttpOnly;{secure_attribute} SameSite=Strict; "
        f"Path={COOKIE_PATH}; Max-Age={max(max_age, 0)}"
    )
