"""The HTTP face of second factors. Its routes come with the log-in integration; the problem rows
of its errors are declared now, so that the app's one table already answers them."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from bastion.core.context import Principal
from bastion.http.deps import provided
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.mfa.errors import (
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
from bastion.mfa.model import Aal
from bastion.mfa.service import MfaService
from bastion.tokens.service import TokenService

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


@raises(ReauthenticationRequired)
async def ensure_recent(request: Request, principal: Principal) -> None:
    """The app's recent-authentication check (``RecentUser``): the token's ``auth_time`` (else
    its ``iat``) and ``aal`` (else aal1) against REAUTH_MAX_AGE. The token verified already, so
    reading its claims again is a cache hit."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    claims = await provided(request, TokenService).verify(token)
    auth_time = claims.get("auth_time", claims["iat"])
    aal = Aal(claims["aal"]) if claims.get("aal") in set(Aal) else Aal.AAL1
    await provided(request, MfaService).ensure_recent(
        principal.user_id, auth_time=datetime.fromtimestamp(int(auth_time), UTC), aal=aal
    )
