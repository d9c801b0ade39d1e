from __future__ import annotations

from bastion.core.errors import BastionError, Unauthenticated


class WeakPassword(BastionError):
    """The new password breaks the password policy; the detail names the rules."""


class WrongPassword(Unauthenticated):
    """The password given to confirm a change is not the account's."""

    detail = "The current password is wrong."
