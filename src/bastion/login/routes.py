"""Log-in: the password, the second factor, a passkey alone, and reauthentication."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from bastion.accounts.errors import SecurityStateChanged
from bastion.guards import PerIpLimit, PerUserLimit, enforce
from bastion.http.deps import ContextDep, CurrentPrincipal, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.http.schemas import EmailAddress
from bastion.login.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    SecondFactorRequired,
)
from bastion.login.service import LoggedIn, LoginFlow
from bastion.mfa.errors import InvalidCredential, InvalidMfaCode, MfaTokenInvalid, SecondStepsPaused
from bastion.mfa.service import MfaService
from bastion.passwords.errors import WrongPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.sessions.responses import TokenResponse, token_response
from bastion.settings import Settings

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])
PROBLEMS: ProblemRows = {
    InvalidCredentials: ProblemType(401, "INVALID_CREDENTIALS", "Invalid credentials"),
    EmailNotVerified: ProblemType(403, "EMAIL_NOT_VERIFIED", "Email not verified"),
    AccountDisabled: ProblemType(403, "ACCOUNT_DISABLED", "Account disabled"),
    SecondFactorRequired: ProblemType(403, "MFA_REQUIRED", "Second factor required to sign in"),
    TooManyAttempts: ProblemType(429, "TOO_MANY_ATTEMPTS", "Too many attempts"),
}
DEVICE_COOKIE = "bastion_device"
DEVICE_COOKIE_PATH = "/api/v1/auth/login"
DEVICE_COOKIE_MAX_AGE = 400 * 86400  # the longest lifetime browsers accept
MAX_TOKEN_LENGTH = 512
MAX_CODE_LENGTH = 64
LoginDep = Annotated[LoginFlow, Depends(provider(LoginFlow))]
MfaDep = Annotated[MfaService, Depends(provider(MfaService))]
SettingsDep = Annotated[Settings, Depends(provider(Settings))]
# A WebAuthn credential as the browser's PublicKeyCredential.toJSON() shapes it; py_webauthn
# checks it member by member, and the body size limit bounds it.
Credential = dict[str, Any]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress = Field(examples=["alice@example.com"])
    password: str = Field(max_length=MAX_PASSWORD_LENGTH, examples=["Correct-Horse-7"])
    remember_me: StrictBool = False


class CodeStep(BaseModel):
    """The second step with a TOTP code or a recovery code."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(max_length=MAX_TOKEN_LENGTH)
    code: str = Field(max_length=MAX_CODE_LENGTH, examples=["123456"])


class CredentialStep(BaseModel):
    """The second step with a security key's assertion."""

    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(max_length=MAX_TOKEN_LENGTH)
    credential: Credential


class MfaTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_token: str = Field(max_length=MAX_TOKEN_LENGTH)


class PasskeyLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: Credential
    remember_me: StrictBool = False


class PasswordProof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class PasswordAndCode(PasswordProof):
    code: str = Field(max_length=MAX_CODE_LENGTH)


class PasswordAndCredential(PasswordProof):
    credential: Credential


class PasskeyProof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential: Credential


# ``{password}``, ``{password, code}``, ``{password, credential}`` or ``{credential}`` (a passkey):
# unknown members are refused, so each body fits exactly one.
Reauthentication = PasswordAndCode | PasswordAndCredential | PasswordProof | PasskeyProof


class Reauthenticated(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - a label, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")


@router.post(
    "/login",
    summary="Log in; remember_me also sets a 30-day refresh cookie; 403 MFA_REQUIRED when the "
    "account has a second factor",
)
@raises(
    InvalidCredentials,
    EmailNotVerified,
    AccountDisabled,
    SecondFactorRequired,
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
    return logged_in(result, response, settings)


@router.post(
    "/login/mfa",
    dependencies=[PerIpLimit],
    summary="Finish a log-in with a second factor: a TOTP code, a recovery code or a security key",
)
@raises(InvalidMfaCode, InvalidCredential, MfaTokenInvalid, SecondStepsPaused, SecurityStateChanged)
async def login_second_step(
    body: CodeStep | CredentialStep,
    response: Response,
    flow: LoginDep,
    settings: SettingsDep,
    context: ContextDep,
) -> TokenResponse:
    result = await flow.complete_second_step(
        body.mfa_token,
        context,
        code=body.code if isinstance(body, CodeStep) else None,
        credential=body.credential if isinstance(body, CredentialStep) else None,
    )
    return logged_in(result, response, settings)


@router.post(
    "/login/mfa/webauthn-options",
    dependencies=[PerIpLimit],
    summary="WebAuthn request options for the second step, listing the user's security keys",
)
@raises(MfaTokenInvalid)
async def login_webauthn_options(body: MfaTokenRequest, mfa: MfaDep) -> dict[str, Any]:
    return await mfa.login_assertion_options(body.mfa_token)


@router.post(
    "/passkey/options",
    dependencies=[PerIpLimit],
    summary="Discoverable WebAuthn request options for a log-in with a passkey",
)
async def passkey_options(mfa: MfaDep) -> dict[str, Any]:
    return await mfa.passkey_options()


@router.post(
    "/passkey/login",
    dependencies=[PerIpLimit],
    summary="Log in with a passkey alone (user verification required): aal2, no password",
)
@raises(InvalidCredential, EmailNotVerified, AccountDisabled, SecurityStateChanged)
async def passkey_login(
    body: PasskeyLoginRequest,
    response: Response,
    flow: LoginDep,
    settings: SettingsDep,
    context: ContextDep,
) -> TokenResponse:
    result = await flow.passkey_login(body.credential, body.remember_me, context)
    return logged_in(result, response, settings)


@router.post(
    "/reauthenticate",
    dependencies=[PerUserLimit],
    summary="Prove it is you again before a critical change: a fresh auth_time for this session",
)
@raises(WrongPassword, InvalidMfaCode, InvalidCredential, TooManyAttempts, SecondStepsPaused)
async def reauthenticate(
    body: Reauthentication, principal: CurrentPrincipal, flow: LoginDep, context: ContextDep
) -> Reauthenticated:
    issued = await flow.reauthenticate(
        principal,
        context,
        password=body.password if isinstance(body, PasswordProof) else None,
        code=body.code if isinstance(body, PasswordAndCode) else None,
        credential=body.credential
        if isinstance(body, PasswordAndCredential | PasskeyProof)
        else None,
    )
    return Reauthenticated(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post(
    "/reauthenticate/webauthn-options",
    dependencies=[PerUserLimit],
    summary="WebAuthn request options for reauthenticating, listing the caller's credentials",
)
async def reauthenticate_webauthn_options(
    principal: CurrentPrincipal, mfa: MfaDep
) -> dict[str, Any]:
    return await mfa.assertion_options(principal.user_id, verify_user=True)


def logged_in(result: LoggedIn, response: Response, settings: Settings) -> TokenResponse:
    """The answer of every log-in: the tokens, and the device cookie for account protection."""
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
