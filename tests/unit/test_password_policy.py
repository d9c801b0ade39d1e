from __future__ import annotations

import pytest

from bastion.passwords.policy import (
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    Rule,
    check_password,
    common_passwords,
    describe,
)

POLICY = PasswordPolicy()


def rules(password: str, email: str = "", policy: PasswordPolicy = POLICY) -> set[Rule]:
    return {violation.rule for violation in check_password(password, policy, email)}


def test_a_long_mixed_password_is_accepted() -> None:
    assert rules("Quiet-Harbor-42") == set()


@pytest.mark.parametrize(
    ("password", "broken"),
    [
        ("Sh0rt", {Rule.TOO_SHORT}),
        ("lowercase-only-9", {Rule.NO_UPPERCASE}),
        ("UPPERCASE-ONLY-9", {Rule.NO_LOWERCASE}),
        ("No-Digits-Here", {Rule.NO_DIGIT}),
        ("abc", {Rule.TOO_SHORT, Rule.NO_UPPERCASE, Rule.NO_DIGIT}),
    ],
)
def test_each_broken_rule_is_named(password: str, broken: set[Rule]) -> None:
    assert rules(password) == broken


def test_the_minimum_length_is_configurable() -> None:
    assert rules("Xyzzyplugh7Q", policy=PasswordPolicy(min_length=13)) == {Rule.TOO_SHORT}


def test_character_class_rules_can_be_switched_off() -> None:
    relaxed = PasswordPolicy(require_uppercase=False, require_lowercase=False, require_digit=False)
    assert rules("just-words-here", policy=relaxed) == set()


def test_passwords_longer_than_256_characters_are_rejected_alone() -> None:
    assert rules("Aa1" * 100) == {Rule.TOO_LONG}
    assert rules(("Aa1" * 100)[:MAX_PASSWORD_LENGTH]) == set()


def test_the_common_password_list_is_large_and_from_a_maintained_package() -> None:
    assert len(common_passwords()) >= 10_000
    assert "password1" in common_passwords()


@pytest.mark.parametrize("password", ["Password1", "Qwerty123", "Iloveyou1"])
def test_common_passwords_are_rejected_whatever_their_case(password: str) -> None:
    assert Rule.COMMON in rules(password)


def test_a_password_containing_the_email_local_part_is_rejected() -> None:
    assert Rule.CONTAINS_EMAIL in rules("Xalicesmith9!", "AliceSmith@example.com")


def test_a_short_local_part_is_not_checked() -> None:
    assert Rule.CONTAINS_EMAIL not in rules("Bob-Builder-77", "bob@example.com")


def test_unicode_letters_count_as_cases() -> None:
    assert rules("Ünïcödé-pässwörd-7") == set()


def test_the_description_names_every_violated_rule() -> None:
    text = describe(check_password("abc", POLICY))
    assert "at least 8 characters" in text
    assert "uppercase" in text
    assert "digit" in text
