from __future__ import annotations

from typing import Any

from bastion.core.errors import Forbidden, Unauthenticated


class InvalidCredentials(Unauthenticated):
    """The email and password do not match an account."""

    detail = "Invalid email or password"


class EmailNotVerified(Forbidden):
    """The password is right but the email address is not confirmed yet."""

    detail = "Please verify your email"


class SecondFactorRequired(Forbidden):
    """The password is right and the account has a second factor: the log-in continues at
    ``/login/mfa`` with ``mfa_token`` (``MFA_REQUIRED``, 403)."""

    detail = "A second factor is required to finish signing in."

    def __init__(self, mfa_token: str, methods: list[str], expires_in: int) -> None:
        super().__init__()
        self.mfa_token = mfa_token
        self.methods = methods
        self.expires_in = expires_in

    def extensions(self) -> dict[str, Any]:
        return {"mfa_token": self.mfa_token, "methods": self.methods, "expires_in": self.expires_in}


class AccountDisabled(Forbidden):
    """The password is right but an administrator disabled the account."""

    detail = "This account has been disabled."
