"""The problem documents second-factor errors answer with: the issue's statuses and codes, from
the rows mfa declares for the app's one problem table."""

from __future__ import annotations

import json

import pytest

from bastion.core.errors import BastionError
from bastion.http.errors import CORE_PROBLEMS, ProblemTable
from bastion.mfa import routes as mfa_routes
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

TABLE = ProblemTable(CORE_PROBLEMS, mfa_routes.PROBLEMS)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidMfaCode(reason="wrong_code"), 401, "INVALID_MFA_CODE"),
        (InvalidCredential(reason="assertion"), 401, "INVALID_CREDENTIAL"),
        (InvalidEnrolmentCode(), 400, "INVALID_MFA_CODE"),
        (InvalidRegistration(), 400, "INVALID_CREDENTIAL"),
        (MfaTokenInvalid(), 401, "MFA_TOKEN_INVALID"),
        (SecondStepsPaused(600), 429, "TOO_MANY_ATTEMPTS"),
        (FactorNotFound(), 404, "NOT_FOUND"),
        (MfaRequiredByRole(), 409, "MFA_REQUIRED_BY_ROLE"),
        (MfaNotEnabled(), 409, "MFA_NOT_ENABLED"),
        (ReauthenticationRequired("aal2"), 403, "REAUTHENTICATION_REQUIRED"),
        (MfaEnrolmentRequired(), 403, "MFA_ENROLLMENT_REQUIRED"),
    ],
)
def test_each_second_factor_error_answers_with_its_status_and_code(
    error: BastionError, status: int, code: str
) -> None:
    response = TABLE.response(error)
    body = json.loads(response.body)
    assert (response.status_code, body["status"], body["code"]) == (status, status, code)
    assert body["detail"] == error.detail


def test_a_refused_second_step_asks_for_no_bearer_token() -> None:
    # The second step of a log-in carries an mfa_token, not an access token.
    for error in (InvalidMfaCode(reason="wrong_code"), MfaTokenInvalid()):
        assert "www-authenticate" not in TABLE.response(error).headers


def test_paused_second_steps_say_when_to_retry() -> None:
    assert TABLE.response(SecondStepsPaused(600)).headers["retry-after"] == "600"
