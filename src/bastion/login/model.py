"""A log-in attempt as it passes the steps: the slots it holds, where it stands, how it ended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from bastion.accounts.model import User
from bastion.audit.model import LoginFailure
from bastion.core.email_address import normalize_email
from bastion.core.errors import BastionError
from bastion.login.errors import AccountDisabled, EmailNotVerified, InvalidCredentials
from bastion.ratelimit.model import WindowState, account_key, ip_subject


@dataclass(frozen=True, slots=True)
class LockoutKeys:
    """The limiter keys an attempt counts under: its client IP's and its account's."""

    ip_failures: str
    ip_block: str
    account_failures: str
    account_block: str

    @classmethod
    def of(cls, email: str, ip: str | None) -> LockoutKeys:
        ip_key = ip_subject(ip)
        account = account_key(normalize_email(email))
        return cls(
            ip_failures=f"login:ip-failures:{ip_key}",
            ip_block=f"login:ip-block:{ip_key}",
            account_failures=f"login:account-failures:{account}",
            account_block=f"login:account-block:{account}",
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """The slots a log-in attempt holds while its credentials are checked.

    Taking the slot before the check, not counting the failure after it, is what stops a
    burst of parallel guesses from all passing the check at once.
    """

    ip: WindowState
    account: WindowState | None  # None for a known device, or the one probe after a block


@dataclass(frozen=True, slots=True)
class Admission:
    """Where a log-in attempt (or a signed-in user's attempt at their password) stands before
    its credentials are checked."""

    email: str
    keys: LockoutKeys
    attempt: Attempt | None = None  # None when the attempt may not be made
    retry_after: int = 0  # when it may not be made for a lockout: seconds until it may


# What the caller is told for each way the credentials can fail.
REFUSAL_ERRORS: dict[LoginFailure, type[BastionError]] = {
    LoginFailure.UNKNOWN_EMAIL: InvalidCredentials,
    LoginFailure.WRONG_PASSWORD: InvalidCredentials,
    LoginFailure.UNVERIFIED: EmailNotVerified,
    LoginFailure.DISABLED: AccountDisabled,
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the credentials did not open an account, and which account when there is one."""

    reason: LoginFailure
    user_id: uuid.UUID | None = None

    @property
    def guessed_wrong(self) -> bool:
        """A wrong guess counts towards the lockouts; a right password on an account that may
        not sign in (unverified, disabled) does not."""
        return REFUSAL_ERRORS[self.reason] is InvalidCredentials

    def error(self) -> BastionError:
        return REFUSAL_ERRORS[self.reason]()


def refusal_for(user: User) -> Refusal | None:
    """Why an account whose password is right may not sign in, if it may not."""
    if not user.is_verified:
        return Refusal(LoginFailure.UNVERIFIED, user.id)
    if not user.is_active:
        return Refusal(LoginFailure.DISABLED, user.id)
    return None
