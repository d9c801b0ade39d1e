from __future__ import annotations

from bastion.core.errors import Conflict
from bastion.core.one_time_tokens import TokenInvalid


class EmailTaken(Conflict):
    """An account with this email already exists."""

    detail = "An account with this email already exists."


class EmailAlreadyVerified(TokenInvalid):
    """The verification link was used already, and the address it confirms is confirmed."""

    detail = "This link was used already: the email address is confirmed."


class SecurityStateChanged(Conflict):
    """The account's security state changed after the credential check that a write relied on;
    nothing was written."""

    detail = "The account changed while this request was handled. Please try again."
