from __future__ import annotations

from bastion.core.errors import BastionError, Conflict


class WeakPassword(BastionError):
    """The new password breaks the password policy; the detail names the rules."""


class EmailTaken(Conflict):
    """An account with this email already exists."""

    detail = "An account with this email already exists."
