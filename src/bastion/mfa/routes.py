"""The HTTP face of second factors: managing them (every change needs a recent authentication),
and the step-up check behind ``RecentUser``. The log-in's second step and passkey log-in are
routes of the log-in flow (``login/routes.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from bastion.core.context import Principal
from bastion.guards import PerUserLimit
from bastion.http.deps import ContextDep, CurrentPrincipal, RecentUser, provided, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.mfa.errors import (
    FactorNotFound,
    InvalidCredential,
    InvalidEnrolmentCode,
    InvalidMfaCode,
    InvalidRegistration,
    MfaEnrolmentRequired,
    MfaNotEnabled,
    MfaRequiredByRole,
    MfaTokenInvalid,
    ReauthenticationRequired,
    SecondStepsPaused,
)
from bastion.mfa.model import (
    FACTOR_NAME_MAX_LENGTH,
    Aal,
    Factor,
    SecondStep,
    after_second_step,
    assurance_of,
)
from bastion.mfa.service import MfaService
from bastion.sessions.errors import SessionRevoked
from bastion.sessions.service import SessionService

router = APIRouter(prefix="/api/v1/auth/mfa", tags=["mfa"])
# A code or a key refused while enrolling is a bad request (400); the same refused while
# signing in fails the authentication (401). FactorNotFound is the core 404 NOT_FOUND.
PROBLEMS: ProblemRows = {
    InvalidMfaCode: ProblemType(401, "INVALID_MFA_CODE", "Invalid code"),
    InvalidCredential: ProblemType(401, "INVALID_CREDENTIAL", "Invalid security key or passkey"),
    InvalidEnrolmentCode: ProblemType(400, "INVALID_MFA_CODE", "Invalid code"),
    InvalidRegistration: ProblemType(400, "INVALID_CREDENTIAL", "Invalid security key or passkey"),
    MfaTokenInvalid: ProblemType(401, "MFA_TOKEN_INVALID", "Sign-in attempt expired"),
    SecondStepsPaused: ProblemType(429, "TOO_MANY_ATTEMPTS", "Too many attempts"),
    MfaRequiredByRole: ProblemType(409, "MFA_REQUIRED_BY_ROLE", "Second factor required by role"),
    MfaNotEnabled: ProblemType(409, "MFA_NOT_ENABLED", "No second factor"),
    ReauthenticationRequired: ProblemType(
        403, "REAUTHENTICATION_REQUIRED", "Recent authentication required"
    ),
    MfaEnrolmentRequired: ProblemType(403, "MFA_ENROLLMENT_REQUIRED", "Second factor required"),
}
MfaDep = Annotated[MfaService, Depends(provider(MfaService))]
SessionsDep = Annotated[SessionService, Depends(provider(SessionService))]
MAX_CODE_LENGTH = 64


@raises(ReauthenticationRequired)
async def ensure_recent(request: Request, principal: Principal) -> None:
    """The step-up rule for ``RecentUser``, installed at start-up: the session proved who it is
    within REAUTH_MAX_AGE, at aal2 when the user has a second factor."""
    await provided(request, MfaService).ensure_recent(
        principal.user_id,
        auth_time=datetime.fromtimestamp(principal.auth_time, UTC),
        aal=assurance_of(principal.aal, principal.amr).aal,
    )


class FactorView(BaseModel):
    id: uuid.UUID
    type: str = Field(description="`totp` or `webauthn`")
    name: str
    passkey: bool
    created_at: datetime
    last_used_at: datetime | None


class MfaStatusView(BaseModel):
    mfa_enabled: bool
    required: bool = Field(description="Whether the user's role requires a second factor")
    factors: list[FactorView]
    recovery_codes_remaining: int


class TotpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=FACTOR_NAME_MAX_LENGTH)


class TotpEnrolmentView(BaseModel):
    factor_id: uuid.UUID
    secret: str = Field(description="Base32; shown once, for apps that cannot scan the QR code")
    otpauth_uri: str
    qr_svg: str


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=MAX_CODE_LENGTH, examples=["123456"])


class Enrolled(BaseModel):
    recovery_codes: list[str] | None = Field(
        description="10 codes when this is the first factor, else null; shown once"
    )
    access_token: str = Field(description="A new access token for this session, at aal2")
    expires_in: int


class WebAuthnFactorView(FactorView, Enrolled):
    pass


class RegistrationOptionsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passkey: StrictBool = False


class RegistrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=FACTOR_NAME_MAX_LENGTH)
    credential: dict[str, Any]


class RenameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=FACTOR_NAME_MAX_LENGTH)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


@router.get("", dependencies=[PerUserLimit], summary="The caller's second factors")
async def mfa_status(principal: CurrentPrincipal, mfa: MfaDep) -> MfaStatusView:
    found = await mfa.status(await mfa.account(principal.user_id))
    return MfaStatusView(
        mfa_enabled=found.mfa_enabled,
        required=found.required,
        factors=[_factor_view(factor) for factor in found.factors],
        recovery_codes_remaining=found.recovery_codes_remaining,
    )


@router.post(
    "/totp",
    status_code=status.HTTP_201_CREATED,
    dependencies=[PerUserLimit],
    summary="Start adding an authenticator app; pending until confirmed, lapses after 10 min",
)
async def start_totp(body: TotpRequest, principal: RecentUser, mfa: MfaDep) -> TotpEnrolmentView:
    enrolment = await mfa.start_totp_enrolment(await mfa.account(principal.user_id), body.name)
    return TotpEnrolmentView(
        factor_id=enrolment.factor_id,
        secret=enrolment.secret,
        otpauth_uri=enrolment.otpauth_uri,
        qr_svg=enrolment.qr_svg,
    )


@router.post(
    "/totp/{factor_id:uuid}/confirm",
    dependencies=[PerUserLimit],
    summary="Confirm an authenticator app with a code from it; this session becomes aal2",
)
@raises(InvalidEnrolmentCode, FactorNotFound, SessionRevoked)
async def confirm_totp(
    factor_id: uuid.UUID,
    body: ConfirmRequest,
    principal: RecentUser,
    mfa: MfaDep,
    sessions: SessionsDep,
    context: ContextDep,
) -> Enrolled:
    user = await mfa.account(principal.user_id)
    enrolled = await mfa.confirm_totp(user, factor_id, body.code, context)
    access_token, expires_in = await _at_aal2(sessions, principal, SecondStep.TOTP)
    return Enrolled(
        recovery_codes=enrolled.recovery_codes, access_token=access_token, expires_in=expires_in
    )


@router.post(
    "/webauthn/options",
    dependencies=[PerUserLimit],
    summary="WebAuthn creation options for a security key or (passkey: true) a passkey",
)
async def webauthn_options(
    body: RegistrationOptionsRequest, principal: RecentUser, mfa: MfaDep
) -> dict[str, Any]:
    user = await mfa.account(principal.user_id)
    return await mfa.registration_options(user, passkey=body.passkey)


@router.post(
    "/webauthn",
    status_code=status.HTTP_201_CREATED,
    dependencies=[PerUserLimit],
    summary="Register a security key or passkey; this session becomes aal2",
)
@raises(InvalidRegistration, SessionRevoked)
async def register_webauthn(
    body: RegistrationRequest,
    principal: RecentUser,
    mfa: MfaDep,
    sessions: SessionsDep,
    context: ContextDep,
) -> WebAuthnFactorView:
    user = await mfa.account(principal.user_id)
    enrolled = await mfa.register_webauthn(user, body.name, body.credential, context)
    access_token, expires_in = await _at_aal2(sessions, principal, SecondStep.WEBAUTHN)
    return WebAuthnFactorView(
        **_factor_view(enrolled.factor).model_dump(),
        recovery_codes=enrolled.recovery_codes,
        access_token=access_token,
        expires_in=expires_in,
    )


@router.post(
    "/recovery-codes",
    dependencies=[PerUserLimit],
    summary="A new set of 10 recovery codes; the previous set stops working",
)
@raises(MfaNotEnabled)
async def regenerate_recovery_codes(
    principal: RecentUser, mfa: MfaDep, context: ContextDep
) -> RecoveryCodes:
    user = await mfa.account(principal.user_id)
    return RecoveryCodes(recovery_codes=await mfa.regenerate_recovery_codes(user, context))


@router.patch("/{factor_id:uuid}", dependencies=[PerUserLimit], summary="Rename a factor")
@raises(FactorNotFound)
async def rename_factor(
    factor_id: uuid.UUID,
    body: RenameRequest,
    principal: RecentUser,
    mfa: MfaDep,
    context: ContextDep,
) -> FactorView:
    user = await mfa.account(principal.user_id)
    return _factor_view(await mfa.rename(user, factor_id, body.name, context))


@router.delete(
    # Only a UUID matches, so /totp, /webauthn and /recovery-codes are no factor's path.
    "/{factor_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[PerUserLimit],
    summary="Remove a factor; removing the last one turns MFA off and deletes recovery codes",
)
@raises(FactorNotFound, MfaRequiredByRole)
async def remove_factor(
    factor_id: uuid.UUID, principal: RecentUser, mfa: MfaDep, context: ContextDep
) -> None:
    await mfa.remove(await mfa.account(principal.user_id), factor_id, context)


async def _at_aal2(
    sessions: SessionService, principal: Principal, used: SecondStep
) -> tuple[str, int]:
    """The caller's session proved the factor just added: it is aal2 from now on."""
    assurance = after_second_step(assurance_of(principal.aal, principal.amr), used)
    issued = await sessions.reassure(
        principal, Aal.AAL2.value, tuple(method.value for method in assurance.amr)
    )
    return issued.access_token, issued.expires_in


def _factor_view(factor: Factor) -> FactorView:
    return FactorView(
        id=factor.id,
        type=factor.type.value,
        name=factor.name,
        passkey=factor.passkey,
        created_at=factor.created_at,
        last_used_at=factor.last_used_at,
    )
