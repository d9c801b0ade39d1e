"""The password policy, as pure functions."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bastion.passwords.errors import WeakPassword

MAX_PASSWORD_LENGTH = 256
MIN_LOCAL_PART_TO_CHECK = 4


class Rule(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NO_UPPERCASE = "no_uppercase"
    NO_LOWERCASE = "no_lowercase"
    NO_DIGIT = "no_digit"
    COMMON = "common"
    CONTAINS_EMAIL = "contains_email"


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 8
    require_uppercase: bool = True
    require_lowercase: bool = True
    require_digit: bool = True


@dataclass(frozen=True, slots=True)
class Violation:
    rule: Rule
    message: str


def check_password(password: str, policy: PasswordPolicy, email: str = "") -> list[Violation]:
    """Every rule the password breaks; an empty list means it is acceptable."""
    if len(password) > MAX_PASSWORD_LENGTH:
        # Checked alone and first: nothing else is worth computing on an oversized input.
        return [Violation(Rule.TOO_LONG, f"must be at most {MAX_PASSWORD_LENGTH} characters")]
    violations = []
    if len(password) < policy.min_length:
        violations.append(
            Violation(Rule.TOO_SHORT, f"must be at least {policy.min_length} characters")
        )
    if policy.require_uppercase and not any(c.isupper() for c in password):
        violations.append(Violation(Rule.NO_UPPERCASE, "must contain an uppercase letter"))
    if policy.require_lowercase and not any(c.islower() for c in password):
        violations.append(Violation(Rule.NO_LOWERCASE, "must contain a lowercase letter"))
    if policy.require_digit and not any(c.isdigit() for c in password):
        violations.append(Violation(Rule.NO_DIGIT, "must contain a digit"))
    if password.casefold() in common_passwords():
        violations.append(
            Violation(Rule.COMMON, "is too common (found in breached-password lists)")
        )
    local_part = email.partition("@")[0].casefold()
    if len(local_part) >= MIN_LOCAL_PART_TO_CHECK and local_part in password.casefold():
        violations.append(Violation(Rule.CONTAINS_EMAIL, "must not contain your email address"))
    return violations


def describe(violations: list[Violation]) -> str:
    return "Password " + "; ".join(v.message for v in violations) + "."


def ensure_strong(password: str, policy: PasswordPolicy, email: str) -> None:
    """Refuse a new password that breaks the policy, naming every rule it breaks."""
    violations = check_password(password, policy, email)
    if violations:
        raise WeakPassword(describe(violations), tuple(v.rule.value for v in violations))


def requirements(policy: PasswordPolicy) -> list[Rule]:
    """The rules a new password must follow under ``policy``, to show before the first try."""
    optional = [
        (policy.require_uppercase, Rule.NO_UPPERCASE),
        (policy.require_lowercase, Rule.NO_LOWERCASE),
        (policy.require_digit, Rule.NO_DIGIT),
    ]
    return [
        Rule.TOO_SHORT,
        *(rule for required, rule in optional if required),
        Rule.COMMON,
        Rule.CONTAINS_EMAIL,
    ]


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords from breach corpora, as shipped by zxcvbn.

    Only zxcvbn's data module is loaded: importing the package would also build its matchers'
    dictionaries for every word list, 12 MB more per worker that the policy never uses.
    """
    package = importlib.util.find_spec("zxcvbn")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("zxcvbn, which ships the common-password list, is not installed")
    path = Path(package.submodule_search_locations[0]) / "frequency_lists.py"
    spec = importlib.util.spec_from_file_location("zxcvbn.frequency_lists", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    return frozenset(p.casefold() for p in data.FREQUENCY_LISTS["passwords"])
