"""The device cookie: a signed mark that this browser signed in to an account before."""

from __future__ import annotations

import secrets
import uuid

from bastion.core.secrets import Signer


class DeviceCookies:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def issue(self, user_id: uuid.UUID) -> str:
        """The cookie for a browser that just signed in to ``user_id``'s account."""
        return self._signer.sign(f"{user_id}:{secrets.token_hex(8)}")

    def owner(self, cookie: str | None) -> str | None:
        """The id of the account the cookie was issued for, if we issued it."""
        signed = self._signer.unsign(cookie) if cookie else None
        return None if signed is None else signed.partition(":")[0]
