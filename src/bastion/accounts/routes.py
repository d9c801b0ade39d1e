"""Sign-up, email verification and the caller's profile."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, Field

from bastion.accounts.errors import EmailAlreadyVerified, EmailTaken, SecurityStateChanged
from bastion.accounts.service import AccountService
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.guards import PerIpLimit, PerUserLimit, RegistrationLimit, VerificationResendRequest
from bastion.http.deps import ContextDep, CurrentPrincipal, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.schemas import Accepted, EmailAddress, StrictModel
from bastion.passwords.errors import WeakPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])
PROBLEMS: ProblemRows = {
    EmailTaken: ProblemType(409, "EMAIL_TAKEN", "Email already registered"),
    # The API answers a second use of a link as any spent link; the pages say more.
    EmailAlreadyVerified: ProblemType(400, "TOKEN_INVALID", "Invalid link"),
    SecurityStateChanged: ProblemType(409, "ACCOUNT_CHANGED", "Account changed"),
}
AccountsDep = Annotated[AccountService, Depends(provider(AccountService))]


class RegisterRequest(StrictModel):
    email: EmailAddress = Field(examples=["alice@example.com"])
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Correct-Horse-7"])


class Verified(BaseModel):
    status: str = Field(default="verified", examples=["verified"])


class Me(BaseModel):
    id: uuid.UUID
    email: str
    role: str
    is_verified: bool
    created_at: datetime


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[RegistrationLimit],
    summary="Sign up; a verification link is emailed",
)
@raises(WeakPassword)
async def register(body: RegisterRequest, accounts: AccountsDep, context: ContextDep) -> Accepted:
    """Answers the same whether or not the email is already registered (no enumeration)."""
    await accounts.register(body.email, body.password, context)
    return Accepted()


@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[PerIpLimit],
    summary="Mail a new verification link",
)
async def resend_verification(
    body: VerificationResendRequest, accounts: AccountsDep, context: ContextDep
) -> Accepted:
    await accounts.resend_verification(body.email, context)
    return Accepted()


@router.post(
    "/verify-email/{token}",
    dependencies=[PerIpLimit],
    summary="Confirm an email address with the mailed token",
)
@raises(TokenInvalid, TokenExpired)
async def verify_email(token: str, accounts: AccountsDep, context: ContextDep) -> Verified:
    await accounts.verify_email(token, context)
    return Verified()


@router.get(
    "/me",
    dependencies=[PerUserLimit],
    summary="The caller's account",
)
async def me(principal: CurrentPrincipal, accounts: AccountsDep) -> Me:
    user = await accounts.get_user(principal.user_id)
    return Me(
        id=user.id,
        email=user.email,
        role=user.role.value,
        is_verified=user.is_verified,
        created_at=user.created_at,
    )
