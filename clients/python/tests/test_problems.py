"""Refusals as RFC 9457 problems with RFC 6750 and RFC 9470 challenges."""

from __future__ import annotations

import json

from bastion_verifier import (
    InsufficientAuthentication,
    InsufficientRole,
    InvalidToken,
    IssuerUnavailable,
    TokenMissing,
)
from bastion_verifier.problems import problem_for


def test_a_missing_token_gets_a_bare_bearer_challenge() -> None:
    problem = problem_for(TokenMissing())
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"] == "Bearer"
    assert problem.headers["Content-Type"] == "application/problem+json"
    assert json.loads(problem.body) == {
        "type": "urn:bastion:problem:unauthenticated",
        "title": "Authentication required",
        "status": 401,
        "detail": "A bearer access token is required.",
        "code": "UNAUTHENTICATED",
    }


def test_a_bad_token_names_the_rfc_6750_error() -> None:
    problem = problem_for(InvalidToken())
    assert problem.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token is invalid."'
    )
    assert json.loads(problem.body)["code"] == "INVALID_TOKEN"


def test_a_step_up_names_what_would_satisfy_per_rfc_9470() -> None:
    problem = problem_for(InsufficientAuthentication("Needs more.", acr_values="aal2", max_age=300))
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_user_authentication", error_description="Needs more.", '
        'acr_values="aal2", max_age="300"'
    )


def test_quotes_and_backslashes_never_break_the_challenge() -> None:
    problem = problem_for(InvalidToken('bad "token" \\ here\n'))
    assert problem.headers["WWW-Authenticate"].endswith('error_description="bad token  here"')


def test_a_wrong_role_is_403_without_a_challenge() -> None:
    problem = problem_for(InsufficientRole())
    assert problem.status == 403
    assert "WWW-Authenticate" not in problem.headers
    assert json.loads(problem.body)["code"] == "FORBIDDEN"


def test_an_unreachable_bastion_is_503_with_retry_after() -> None:
    problem = problem_for(IssuerUnavailable())
    assert problem.status == 503
    assert problem.headers["Retry-After"] == "5"
    assert json.loads(problem.body)["code"] == "SERVICE_UNAVAILABLE"
