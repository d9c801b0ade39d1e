from __future__ import annotations

from bastion.core.errors import BastionError


class WeakPassword(BastionError):
    """The new password breaks the password policy; the detail names the rules."""
