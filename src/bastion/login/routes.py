"""Log-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from bastion.accounts.errors import SecurityStateChanged
from bastion.guards import enforce
from bastion.http.deps import ContextDep, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.schemas import EmailAddress
from bastion.login.errors import AccountDisabled, EmailNotVerified, InvalidCredentials
from bastion.login.service import LoginFlow
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.sessions.responses import TokenResponse, token_response
from bastion.settings import Settings

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])
PROBLEMS: ProblemRows = {
    InvalidCredentials: ProblemType(401, "INVALID_CREDENTIALS", "Invalid credentials"),
    EmailNotVerified: ProblemType(403, "EMAIL_NOT_VERIFIED", "Email not verified"),
    AccountDisabled: ProblemType(403, "ACCOUNT_DISABLED", "Account disabled"),
    TooManyAttempts: ProblemType(429, "TOO_MANY_ATTEMPTS", "Too many attempts"),
}
DEVICE_COOKIE = "bastion_device"
DEVICE_COOKIE_PATH = "/api/v1/auth/login"
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers accept
LoginDep = Annotated[LoginFlow, Depends(provider(LoginFlow))]
SettingsDep = Annotated[Settings, Depends(provider(Settings))]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(examples=["alice@example.com"])
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Correct-Horse-7"])
    remember_me: StrictBool = False


@router.post("/login", summary="Log in; remember_me also sets a 30-day refresh cookie")
@raises(
    InvalidCredentials,
    EmailNotVerified,
    AccountDisabled,
    TooManyAttempts,
    RateLimited,
    SecurityStateChanged,
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    flow: LoginDep,
    settings: SettingsDep,
    context: ContextDep,
) -> TokenResponse:
    # The per-IP request limit is counted with the attempt's lockout slots, in one round trip.
    usage, admission = await flow.admit(body.email, context, request.cookies.get(DEVICE_COOKIE))
    enforce(request, usage)
    result = await flow.log_in(admission, body.password, body.remember_me, context)
    set_device_cookie(response, result.device_cookie, settings.cookie_secure)
    return token_response(result.tokens, response, settings.cookie_secure)


def set_device_cookie(response: Response, value: str, secure: bool) -> None:
    """Mark this browser as one that signed in to the account, for account protection."""
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path=DEVICE_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
