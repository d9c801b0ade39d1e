"""Sign-up, email verification and the caller's profile."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.accounts.errors import WeakPassword
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.http.deps import (
    ContextDep,
    CurrentPrincipal,
    PerIpLimit,
    PerUserLimit,
    RegistrationLimit,
    ServicesDep,
    VerificationResendLimit,
)
from bastion.http.errors import openapi_responses
from bastion.http.fields import EmailAddress
from bastion.ratelimit.errors import RateLimited
from bastion.sessions.errors import SessionRevoked
from bastion.tokens.errors import AccessTokenExpired, InvalidToken

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])
ACCEPTED = "If this address can receive email, a message is on its way."


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(StrictModel):
    email: EmailAddress = Field(examples=["alice@example.com"])
    password: str = Field(max_length=4096, examples=["Correct-Horse-7"])


class EmailRequest(StrictModel):
    email: EmailAddress = Field(examples=["alice@example.com"])


class Accepted(BaseModel):
    status: str = Field(default="accepted", examples=["accepted"])
    detail: str = Field(default=ACCEPTED)


class Verified(BaseModel):
    status: str = Field(default="verified", examples=["verified"])


class Me(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    is_verified: bool
    created_at: datetime


BEARER_ERRORS = (InvalidToken, AccessTokenExpired, SessionRevoked)


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    responses=openapi_responses(WeakPassword, RateLimited),
    dependencies=[RegistrationLimit],
    summary="Sign up; a verification link is emailed",
)
async def register(body: RegisterRequest, services: ServicesDep, context: ContextDep) -> Accepted:
    """Answers the same whether or not the email is already registered (no enumeration)."""
    await services.accounts.register(body.email, body.password, context)
    return Accepted()


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    responses=openapi_responses(RateLimited),
    dependencies=[PerIpLimit, VerificationResendLimit],
    summary="Mail a new verification link",
)
async def resend_verification(body: EmailRequest, services: ServicesDep) -> Accepted:
    await services.accounts.resend_verification(body.email)
    return Accepted()


@router.post(
    "/verify-email/{token}",
    responses=openapi_responses(TokenInvalid, TokenExpired, RateLimited),
    dependencies=[PerIpLimit],
    summary="Confirm an email address with the mailed token",
)
async def verify_email(token: str, services: ServicesDep, context: ContextDep) -> Verified:
    await services.accounts.verify_email(token, context)
    return Verified()


@router.get(
    "/me",
    responses=openapi_responses(*BEARER_ERRORS, RateLimited),
    dependencies=[PerUserLimit],
    summary="The caller's account",
)
async def me(principal: CurrentPrincipal, services: ServicesDep) -> Me:
    user = await services.accounts.get_user(principal.user_id)
    return Me(
        id=user.id,
        email=user.email,
        role=user.role.value,
        is_verified=user.is_verified,
        created_at=user.created_at,
    )
