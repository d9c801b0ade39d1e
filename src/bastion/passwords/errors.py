from __future__ import annotations

from bastion.core.errors import BastionError, Unauthenticated


class WeakPassword(BastionError):
    """The new password breaks the password policy; the detail names the rules."""

    def __init__(self, detail: str | None = None, rules: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.rules = rules  # the names of the rules broken (policy.Rule values)


class WrongPassword(Unauthenticated):
    """The password given to confirm a change is not the account's."""

    detail = "The current password is wrong."
