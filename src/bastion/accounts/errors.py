from __future__ import annotations

from bastion.core.errors import Conflict


class EmailTaken(Conflict):
    """An account with this email already exists."""

    detail = "An account with this email already exists."
