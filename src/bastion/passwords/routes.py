"""Forgotten-password, reset and change endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.guards import PasswordResetRequest, PerIpLimit, PerUserLimit
from bastion.http.deps import ContextDep, CurrentPrincipal, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.schemas import Accepted
from bastion.passwords.errors import WeakPassword, WrongPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.passwords.service import PasswordService
from bastion.ratelimit.errors import TooManyAttempts

router = APIRouter(prefix="/api/v1/auth", tags=["passwords"])
PROBLEMS: ProblemRows = {
    WeakPassword: ProblemType(422, "WEAK_PASSWORD", "Password too weak"),
    WrongPassword: ProblemType(401, "INVALID_CREDENTIALS", "Invalid credentials"),
}
PasswordsDep = Annotated[PasswordService, Depends(provider(PasswordService))]


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
    dependencies=[PerIpLimit],
    summary="Mail a password-reset link (same answer whether or not the account exists)",
)
async def forgot_password(
    body: PasswordResetRequest, passwords: PasswordsDep, context: ContextDep
) -> Accepted:
    await passwords.forgot_password(body.email, context)
    return Accepted()


@router.post(
    "/reset-password",
    dependencies=[PerIpLimit],
    summary="Set a new password with a mailed token; every session ends",
)
@raises(TokenInvalid, TokenExpired, WeakPassword)
async def reset_password(
    body: ResetRequest, passwords: PasswordsDep, context: ContextDep
) -> PasswordReset:
    await passwords.reset_password(body.token, body.new_password, context)
    return PasswordReset()


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PerUserLimit],
    summary="Change the password; other sessions end, this one stays",
)
@raises(WrongPassword, WeakPassword, TooManyAttempts)
async def change_password(
    body: ChangeRequest, principal: CurrentPrincipal, passwords: PasswordsDep, context: ContextDep
) -> None:
    await passwords.change_password(principal, body.current_password, body.new_password, context)
