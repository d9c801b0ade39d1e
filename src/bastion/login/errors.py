from __future__ import annotations

from bastion.core.errors import Forbidden, Unauthenticated


class InvalidCredentials(Unauthenticated):
    """The email and password do not match an account."""

    detail = "Invalid email or password"


class EmailNotVerified(Forbidden):
    """The password is right but the email address is not confirmed yet."""

    detail = "Please verify your email"


class AccountDisabled(Forbidden):
    """The password is right but an administrator disabled the account."""

    detail = "This account has been disabled."
