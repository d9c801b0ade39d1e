"""The HTTP face of second factors. Its routes come with the log-in integration; the problem rows
of its errors are declared now, so that the app's one table already answers them."""

from __future__ import annotations

from bastion.http.errors import ProblemRows, ProblemType
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
