"""Typed claims and endpoint requirements, without I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion_verifier import InsufficientAuthentication, InsufficientRole, InvalidToken
from bastion_verifier.claims import Claims, Requirement, Validity, claims_from_payload
from bastion_verifier.errors import TokenExpired

NOW = 1_800_000_000.0


def payload(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "https://auth.example.com",
        "aud": "bastion",
        "sub": "5b0c7a4e-0000-4000-8000-000000000001",
        "email": "ada@example.com",
        "role": "user",
        "sid": "9d1e3f00-0000-4000-8000-000000000002",
        "iat": int(NOW) - 60,
        "exp": int(NOW) + 600,
        "jti": "abc",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def claims(**overrides: Any) -> Claims:
    return claims_from_payload(payload(**overrides), kid="k1")


def test_tokens_without_assurance_claims_get_aal1_no_methods_and_auth_time_at_issue() -> None:
    parsed = claims()
    assert parsed.aal == "aal1"
    assert parsed.amr == ()
    assert parsed.auth_time == parsed.iat == datetime.fromtimestamp(NOW - 60, UTC)
    assert parsed.exp == datetime.fromtimestamp(NOW + 600, UTC)
    assert (parsed.sub, parsed.sid, parsed.role, parsed.kid) == (
        "5b0c7a4e-0000-4000-8000-000000000001",
        "9d1e3f00-0000-4000-8000-000000000002",
        "user",
        "k1",
    )


def test_assurance_claims_are_read_when_present() -> None:
    parsed = claims(aal="aal2", amr=["pwd", "otp", "mfa"], auth_time=int(NOW) - 30)
    assert parsed.aal == "aal2"
    assert parsed.amr == ("pwd", "otp", "mfa")
    assert parsed.auth_time == datetime.fromtimestamp(NOW - 30, UTC)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": None},
        {"sid": None},
        {"email": None},
        {"role": ""},
        {"sub": 42},
        {"amr": "pwd"},
        {"amr": ["pwd", 1]},
        {"aal": 2},
        {"jti": 5},
        {"iat": "yesterday"},
        {"iat": True},
        {"exp": 10**30},
        {"exp": -1},
        {"exp": float("inf")},
        {"auth_time": None, "iat": None},
    ],
)
def test_claims_of_the_wrong_type_or_range_make_the_token_invalid(
    overrides: dict[str, Any],
) -> None:
    with pytest.raises(InvalidToken):
        claims_from_payload(payload(**overrides), kid="k1")


def test_times_are_checked_with_the_leeway() -> None:
    validity = Validity.of(payload(iat=int(NOW), exp=int(NOW) + 60, nbf=int(NOW) + 5))
    validity.check(NOW, leeway=10)
    validity.check(NOW + 69.9, leeway=10)
    with pytest.raises(TokenExpired):
        validity.check(NOW + 70, leeway=10)
    with pytest.raises(InvalidToken, match="not valid yet"):
        validity.check(NOW - 5.1, leeway=0)
    with pytest.raises(InvalidToken, match="issued in the future"):
        Validity.of(payload(iat=int(NOW) + 11)).check(NOW, leeway=10)


def test_a_requirement_refuses_another_role_with_403_before_anything_else() -> None:
    requirement = Requirement.of(role="admin", aal="aal2")
    with pytest.raises(InsufficientRole):
        requirement.check(claims(role="user"), NOW, leeway=0)
    Requirement.of(role={"admin", "staff"}).check(claims(role="staff"), NOW, leeway=0)


def test_a_weaker_assurance_level_asks_for_a_step_up() -> None:
    requirement = Requirement.of(aal="aal2")
    requirement.check(claims(aal="aal2"), NOW, leeway=0)
    requirement.check(claims(aal="aal3"), NOW, leeway=0)
    for weaker in ("aal1", "aal9", "AAL2"):
        with pytest.raises(InsufficientAuthentication) as refused:
            requirement.check(claims(aal=weaker), NOW, leeway=0)
        assert (refused.value.acr_values, refused.value.max_age) == ("aal2", None)


def test_an_authentication_older_than_max_age_asks_for_a_fresh_one() -> None:
    requirement = Requirement.of(aal="aal2", max_age=300)
    requirement.check(claims(aal="aal2", auth_time=int(NOW) - 300), NOW, leeway=0)
    with pytest.raises(InsufficientAuthentication) as refused:
        requirement.check(claims(aal="aal2", auth_time=int(NOW) - 301), NOW, leeway=0)
    assert (refused.value.acr_values, refused.value.max_age) == ("aal2", 300)
    assert "within the last 300 seconds" in refused.value.detail


def test_requirements_that_cannot_be_met_are_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="aal must be one of"):
        Requirement.of(aal="gold")
    with pytest.raises(ValueError, match="max_age"):
        Requirement.of(max_age=-1)
    with pytest.raises(ValueError, match="at least one role"):
        Requirement.of(role=[])


def test_lifetime_is_what_the_token_was_issued_for() -> None:
    now = int(time.time())
    assert claims(iat=now, exp=now + 900).lifetime() == 900
