"""The errors of second factors. Their HTTP rows come with the routes."""

from __future__ import annotations

import uuid
from typing import Any

from bastion.core.errors import BastionError, Conflict, Forbidden, NotFound, Unauthenticated
from bastion.ratelimit.errors import RateLimited


class SecondStepRejected(Unauthenticated):
    """A second step (or passkey) did not prove the user. ``reason`` and ``factor_id`` are for
    the audit trail; the caller sees only the class."""

    method = "unknown"

    def __init__(self, *, reason: str, factor_id: uuid.UUID | None = None) -> None:
        super().__init__()
        self.reason = reason
        self.factor_id = factor_id


class InvalidMfaCode(SecondStepRejected):
    """The TOTP or recovery code given for a second step is wrong, used or out of time
    (``INVALID_MFA_CODE``, 401)."""

    detail = "The code is not valid."
    method = "code"


class InvalidCredential(SecondStepRejected):
    """A WebAuthn assertion failed: wrong origin, RP ID, challenge, signature, counter, user
    verification, or a credential that is not the user's (``INVALID_CREDENTIAL``, 401)."""

    detail = "The security key or passkey could not be verified."
    method = "webauthn"


class InvalidEnrolmentCode(BastionError):
    """The code that should confirm a new TOTP factor is wrong (``INVALID_MFA_CODE``, 400)."""

    detail = "The code is not valid. Check the time on your device and try the next code."


class InvalidRegistration(BastionError):
    """A WebAuthn registration failed: wrong origin, RP ID, challenge or signature, a replayed
    challenge, or a credential already registered (``INVALID_CREDENTIAL``, 400)."""

    detail = "The security key or passkey could not be registered."


class SecondStepsPaused(RateLimited):
    """Second steps on this account are paused after repeated failures, whatever the mfa_token
    or IP (``TOO_MANY_ATTEMPTS``, 429)."""

    detail = "Too many attempts. Please try again later"


class MfaTokenInvalid(Unauthenticated):
    """The mfa_token is unknown, used, expired, or burnt by wrong codes
    (``MFA_TOKEN_INVALID``, 401)."""

    detail = "This sign-in attempt has expired. Please sign in again."


class FactorNotFound(NotFound):
    """No such factor among the caller's (``NOT_FOUND``, 404)."""

    detail = "Factor not found."


class MfaRequiredByRole(Conflict):
    """The last factor cannot be removed: the user's role requires a second factor
    (``MFA_REQUIRED_BY_ROLE``, 409)."""

    detail = "Your role requires a second factor, so the last one cannot be removed."


class MfaNotEnabled(Conflict):
    """Recovery codes exist only beside a second factor (``MFA_NOT_ENABLED``, 409)."""

    detail = "Add a second factor first."


class ReauthenticationRequired(Forbidden):
    """The change needs a recent authentication at ``aal_required``
    (``REAUTHENTICATION_REQUIRED``, 403)."""

    detail = "Please confirm it is you before making this change."

    def __init__(self, aal_required: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.aal_required = aal_required

    def extensions(self) -> dict[str, Any]:
        return {"aal_required": self.aal_required}


class MfaEnrolmentRequired(Forbidden):
    """The user's role requires a second factor before using the admin API
    (``MFA_ENROLLMENT_REQUIRED``, 403)."""

    detail = "Your role requires a second factor. Please add one first."
