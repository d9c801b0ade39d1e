"""Forgotten-password, reset and change endpoints."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.accounts.errors import WeakPassword
from bastion.accounts.routes import Accepted, EmailRequest
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.http.deps import (
    ContextDep,
    CurrentPrincipal,
    PasswordResetLimit,
    PerIpLimit,
    PerUserLimit,
    ServicesDep,
)
from bastion.http.errors import openapi_responses
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.ratelimit.errors import RateLimited
from bastion.sessions.errors import InvalidCredentials, SessionRevoked
from bastion.tokens.errors import AccessTokenExpired, InvalidToken

router = APIRouter(prefix="/api/v1/auth", tags=["passwords"])


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(max_length=512)
    new_password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Another-Horse-8"])


class ChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class PasswordReset(BaseModel):
    status: str = "password_reset"


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    responses=openapi_responses(RateLimited),
    dependencies=[PerIpLimit, PasswordResetLimit],
    summary="Mail a password-reset link (same answer whether or not the account exists)",
)
async def forgot_password(
    body: EmailRequest, services: ServicesDep, context: ContextDep
) -> Accepted:
    await services.passwords.forgot_password(body.email, context)
    return Accepted()


@router.post(
    "/reset-password",
    responses=openapi_responses(TokenInvalid, TokenExpired, WeakPassword, RateLimited),
    dependencies=[PerIpLimit],
    summary="Set a new password with a mailed token; every session ends",
)
async def reset_password(
    body: ResetRequest, services: ServicesDep, context: ContextDep
) -> PasswordReset:
    await services.passwords.reset_password(body.token, body.new_password, context)
    return PasswordReset()


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=openapi_responses(
        InvalidCredentials,
        WeakPassword,
        InvalidToken,
        AccessTokenExpired,
        SessionRevoked,
        RateLimited,
    ),
    dependencies=[PerUserLimit],
    summary="Change the password; other sessions end, this one stays",
)
async def change_password(
    body: ChangeRequest, principal: CurrentPrincipal, services: ServicesDep, context: ContextDep
) -> None:
    await services.passwords.change_password(
        principal, body.current_password, body.new_password, context
    )
