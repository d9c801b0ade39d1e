"""The rules of second factors, without I/O: TOTP steps, recovery codes, sign counters,
assurance levels, step-up freshness, the role policy and the mfa_token."""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest

from bastion.mfa.model import (
    MFA_TOKEN_MAX_WRONG_CODES,
    RECOVERY_CODE_ALPHABET,
    RECOVERY_CODES_PER_SET,
    Aal,
    AdminRefusal,
    Amr,
    Assurance,
    ChallengePurpose,
    MfaToken,
    SecondStep,
    TotpFactor,
    WebAuthnCredential,
    accepted_totp_step,
    admin_refusal,
    after_second_step,
    assurance_of,
    factor_name,
    mfa_token_usable,
    new_challenge,
    new_mfa_token,
    new_recovery_codes,
    new_totp_factor,
    new_totp_secret,
    normalize_recovery_code,
    otpauth_uri,
    passkey_assurance,
    password_assurance,
    pending_lapsed,
    reauthentication_needed,
    recovery_code_digest,
    role_requires_mfa,
    second_steps_offered,
    sign_count_accepted,
    totp_step,
    typed_code,
    usable_factors,
)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
SECRET = new_totp_secret()


def code_at(moment: datetime, secret: str = SECRET) -> str:
    return pyotp.TOTP(secret).at(moment)


def pending(created_at: datetime = T0) -> TotpFactor:
    return new_totp_factor(uuid.uuid4(), "Phone", b"sealed", created_at)


def credential(*, passkey: bool = False) -> WebAuthnCredential:
    return WebAuthnCredential(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        name="Key",
        credential_id=b"id",
        public_key=b"key",
        sign_count=0,
        transports=("usb",),
        aaguid="00000000-0000-0000-0000-000000000000",
        backup_eligible=passkey,
        backup_state=passkey,
        passkey=passkey,
        created_at=T0,
    )


def test_the_current_code_is_accepted_with_its_step() -> None:
    assert accepted_totp_step(SECRET, code_at(T0), T0, None) == totp_step(T0)


@pytest.mark.parametrize("drift", [-30, 30])
def test_one_step_of_clock_drift_is_accepted_either_way(drift: int) -> None:
    moment = T0 + timedelta(seconds=drift)
    assert accepted_totp_step(SECRET, code_at(moment), T0, None) == totp_step(moment)


@pytest.mark.parametrize("drift", [-60, 60, 3600])
def test_codes_further_than_one_step_away_are_refused(drift: int) -> None:
    assert accepted_totp_step(SECRET, code_at(T0 + timedelta(seconds=drift)), T0, None) is None


def test_a_code_is_not_accepted_twice_in_its_step_or_the_next() -> None:
    step = accepted_totp_step(SECRET, code_at(T0), T0, None)
    assert step is not None
    assert accepted_totp_step(SECRET, code_at(T0), T0, step) is None
    assert accepted_totp_step(SECRET, code_at(T0), T0 + timedelta(seconds=30), step) is None


def test_an_earlier_step_than_the_last_accepted_is_refused() -> None:
    later = totp_step(T0 + timedelta(seconds=30))
    assert accepted_totp_step(SECRET, code_at(T0), T0, later) is None


def test_the_next_steps_code_is_accepted_after_the_current_one() -> None:
    step = totp_step(T0)
    assert accepted_totp_step(SECRET, code_at(T0), T0, None) == step
    following = T0 + timedelta(seconds=30)
    assert accepted_totp_step(SECRET, code_at(following), following, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", " 123456"])
def test_codes_that_are_not_six_ascii_digits_are_refused(code: str) -> None:
    assert accepted_totp_step(SECRET, code, T0, None) is None


def test_a_typed_code_loses_the_spaces_apps_show_in_it() -> None:
    assert typed_code(" 123 456\n") == "123456"


def test_another_secrets_code_is_refused() -> None:
    assert accepted_totp_step(SECRET, code_at(T0, new_totp_secret()), T0, None) is None


def test_totp_secrets_carry_160_bits() -> None:
    secret = new_totp_secret()
    assert len(secret) == 32 and secret != new_totp_secret()


def test_the_otpauth_uri_names_the_issuer_and_the_account() -> None:
    uri = otpauth_uri(SECRET, "alice@example.com", "Bastion")
    assert uri.startswith("otpauth://totp/Bastion:alice%40example.com?")
    assert f"secret={SECRET}" in uri and "issuer=Bastion" in uri


def test_a_pending_factor_lapses_after_ten_minutes() -> None:
    factor = pending()
    assert not pending_lapsed(factor, T0 + timedelta(minutes=9, seconds=59))
    assert pending_lapsed(factor, T0 + timedelta(minutes=10))


def test_a_confirmed_factor_never_lapses_and_only_confirmed_factors_count() -> None:
    waiting = pending()
    confirmed = replace(waiting, confirmed_at=T0)
    assert not pending_lapsed(confirmed, T0 + timedelta(days=400))
    assert usable_factors([waiting, confirmed]) == [confirmed]


def test_the_methods_offered_follow_the_factors_and_the_codes_left() -> None:
    confirmed_totp = replace(pending(), confirmed_at=T0)
    assert second_steps_offered([], 10) == []
    assert second_steps_offered([pending()], 10) == []
    assert second_steps_offered([confirmed_totp], 0) == [SecondStep.TOTP]
    assert second_steps_offered([credential(), confirmed_totp], 3) == [
        SecondStep.TOTP,
        SecondStep.WEBAUTHN,
        SecondStep.RECOVERY_CODE,
    ]


def test_factor_names_are_tidied_and_fall_back_to_a_default() -> None:
    assert factor_name("  My   phone ", "Authenticator app") == "My phone"
    assert factor_name("   ", "Authenticator app") == "Authenticator app"
    assert factor_name(None, "Security key") == "Security key"
    assert len(factor_name("x" * 500, "Key")) == 64


def test_a_set_has_ten_distinct_codes_in_groups_of_four() -> None:
    codes = new_recovery_codes()
    assert len(codes) == RECOVERY_CODES_PER_SET == len(set(codes))
    for code in codes:
        groups = code.split("-")
        assert [len(group) for group in groups] == [4, 4, 4]
        assert all(symbol in RECOVERY_CODE_ALPHABET for symbol in "".join(groups))


def test_each_recovery_code_carries_at_least_sixty_random_bits() -> None:
    symbols = len(new_recovery_codes()[0].replace("-", ""))
    assert symbols * math.log2(len(RECOVERY_CODE_ALPHABET)) >= 60


def test_typed_codes_are_forgiven_case_spaces_dashes_and_look_alikes() -> None:
    assert normalize_recovery_code(" AB12 CD34-EF56 ") == "ab12cd34ef56"
    assert normalize_recovery_code("ab1l-cd0o-ef5i") == "ab11cd00ef51"
    assert normalize_recovery_code("ab12-cd34") is None
    assert normalize_recovery_code("ab12-cd34-ef5u") is None  # U is not in the alphabet


def test_recovery_codes_are_compared_as_an_hmac_of_their_normal_form() -> None:
    key = b"k" * 32
    digest = recovery_code_digest(key, "AB12-CD34-EF56")
    expected = hmac.new(key, b"ab12cd34ef56", hashlib.sha256).hexdigest()
    assert digest == expected == recovery_code_digest(key, "ab12cd34ef56")
    assert recovery_code_digest(b"x" * 32, "ab12cd34ef56") != digest
    assert recovery_code_digest(key, "not a code") is None


@pytest.mark.parametrize(
    ("stored", "presented", "accepted"),
    [
        (0, 0, True),  # a synced passkey: always 0
        (0, 1, True),
        (5, 6, True),
        (5, 5, False),  # did not increase: a clone, or a replay
        (5, 4, False),  # went backwards
        (5, 0, False),  # a counting authenticator that suddenly reports 0
    ],
)
def test_the_sign_counter_must_increase_unless_it_stays_zero(
    stored: int, presented: int, accepted: bool
) -> None:
    assert sign_count_accepted(stored, presented) is accepted


def test_a_password_login_is_aal1_with_pwd() -> None:
    assert password_assurance().aal is Aal.AAL1
    assert password_assurance().amr == (Amr.PASSWORD,)


@pytest.mark.parametrize("used", [SecondStep.TOTP, SecondStep.RECOVERY_CODE])
def test_a_code_as_second_step_adds_otp_and_mfa_at_aal2(used: SecondStep) -> None:
    reached = after_second_step(password_assurance(), used)
    assert reached.aal is Aal.AAL2
    assert [value.value for value in reached.amr] == ["pwd", "otp", "mfa"]


def test_a_security_key_as_second_step_adds_hwk_and_mfa_at_aal2() -> None:
    reached = after_second_step(password_assurance(), SecondStep.WEBAUTHN)
    assert reached.aal is Aal.AAL2
    assert [value.value for value in reached.amr] == ["pwd", "hwk", "mfa"]


def test_a_passkey_login_is_aal2_with_hwk_and_user_and_never_pwd() -> None:
    reached = passkey_assurance()
    assert reached.aal is Aal.AAL2
    assert [value.value for value in reached.amr] == ["hwk", "user"]


def recent(**changes: Any) -> Aal | None:
    values: dict[str, Any] = {
        "auth_time": T0,
        "aal": Aal.AAL1,
        "mfa_enabled": False,
        "now": T0 + timedelta(seconds=900),
        "max_age": 900,
    }
    values.update(changes)
    return reauthentication_needed(**values)


def test_an_authentication_within_the_max_age_is_recent_enough() -> None:
    assert recent() is None
    assert recent(aal=Aal.AAL2, mfa_enabled=True) is None


def test_a_stale_authentication_needs_a_new_one_at_the_level_the_user_can_reach() -> None:
    assert recent(now=T0 + timedelta(seconds=901)) is Aal.AAL1
    stale = T0 + timedelta(seconds=901)
    assert recent(now=stale, aal=Aal.AAL2, mfa_enabled=True) is Aal.AAL2


def test_a_user_with_mfa_needs_aal2_however_recent() -> None:
    assert recent(mfa_enabled=True, now=T0) is Aal.AAL2


def test_the_role_policy_names_the_roles_that_need_a_second_factor() -> None:
    assert role_requires_mfa("admin", ["admin"])
    assert not role_requires_mfa("user", ["admin"])
    assert not role_requires_mfa("admin", [])


def admin(**changes: Any) -> AdminRefusal | None:
    values: dict[str, Any] = {
        "role_requires": True,
        "mfa_enabled": True,
        "aal": Aal.AAL2,
        "auth_time": T0,
        "now": T0 + timedelta(seconds=60),
        "max_age": 900,
        "write": False,
    }
    values.update(changes)
    return admin_refusal(**values)


def test_an_admin_without_a_factor_must_enrol_before_using_the_admin_api() -> None:
    assert admin(mfa_enabled=False) is AdminRefusal.ENROLMENT_REQUIRED
    assert admin(mfa_enabled=False, write=True) is AdminRefusal.ENROLMENT_REQUIRED


def test_an_admin_with_a_factor_needs_aal2_for_reads_and_writes_alike() -> None:
    assert admin(aal=Aal.AAL1) is AdminRefusal.REAUTHENTICATION_REQUIRED
    assert admin(aal=Aal.AAL1, write=True) is AdminRefusal.REAUTHENTICATION_REQUIRED
    assert admin() is None
    assert admin(write=True) is None


def test_admin_writes_need_a_recent_authentication_and_reads_do_not() -> None:
    stale = T0 + timedelta(seconds=901)
    assert admin(now=stale) is None
    assert admin(now=stale, write=True) is AdminRefusal.REAUTHENTICATION_REQUIRED


def test_a_role_without_the_requirement_reads_freely_and_writes_after_step_up() -> None:
    stale = T0 + timedelta(seconds=901)
    free = {"role_requires": False, "mfa_enabled": False, "aal": Aal.AAL1}
    assert admin(**free) is None
    assert admin(**free, now=stale, write=True) is AdminRefusal.REAUTHENTICATION_REQUIRED


def token(**changes: Any) -> MfaToken:
    return replace(new_mfa_token("h", uuid.uuid4(), True, "state", T0, 300), **changes)


def test_an_mfa_token_is_usable_until_it_expires() -> None:
    assert mfa_token_usable(token(), T0 + timedelta(seconds=299))
    assert not mfa_token_usable(token(), T0 + timedelta(seconds=300))


def test_an_unknown_used_or_burnt_mfa_token_is_not_usable() -> None:
    assert not mfa_token_usable(None, T0)
    assert not mfa_token_usable(token(used_at=T0), T0)
    burnt = token(wrong_codes=MFA_TOKEN_MAX_WRONG_CODES)
    assert not mfa_token_usable(burnt, T0)
    assert mfa_token_usable(token(wrong_codes=MFA_TOKEN_MAX_WRONG_CODES - 1), T0)


def test_a_webauthn_challenge_lives_five_minutes_and_is_stored_as_a_hash() -> None:
    challenge = new_challenge(b"\x01" * 32, ChallengePurpose.PASSKEY_LOGIN, None, T0)
    assert challenge.expires_at == T0 + timedelta(minutes=5)
    assert challenge.challenge_hash == hashlib.sha256(b"\x01" * 32).hexdigest()


def test_a_passkey_is_marked_as_such_and_counts_as_confirmed() -> None:
    assert credential(passkey=True).passkey and credential().confirmed


def test_the_assurance_of_token_claims_keeps_known_values_only() -> None:
    assert assurance_of("aal2", ["pwd", "otp", "mfa"]) == Assurance(
        Aal.AAL2, (Amr.PASSWORD, Amr.OTP, Amr.MULTI_FACTOR)
    )
    assert assurance_of("aal9", ["pwd", "sms", "pwd"]) == Assurance(Aal.AAL1, (Amr.PASSWORD,))
