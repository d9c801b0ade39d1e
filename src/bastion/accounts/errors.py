from __future__ import annotations

from bastion.core.errors import Conflict


class EmailTaken(Conflict):
    """An account with this email already exists."""

    detail = "An account with this email already exists."


class SecurityStateChanged(Conflict):
    """The account's security state changed after the credential check that a write relied on;
    nothing was written."""

    detail = "The account changed while this request was handled. Please try again."
