from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bastion.core.context import RequestContext, SecurityStamp


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    needs_rehash: bool = False


class PasswordHasher(Protocol):
    """Hashes and verifies passwords without blocking the event loop."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> Verification:
        """Whether ``password`` matches; ``needs_rehash`` when the hash should be replaced by
        one at the current algorithm and cost (known once the password is)."""
        ...

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real verification, for callers that must not reveal a miss."""
        ...


class PasswordConfirmation(Protocol):
    """A signed-in user proving their password again before a sensitive change, checked and
    counted by the log-in's own steps (``login.service.LoginFlow``)."""

    async def confirm_password(
        self, email: str, password: str, context: RequestContext
    ) -> SecurityStamp:
        """The account's security state as the check saw it. A wrong password raises
        ``WrongPassword`` and counts towards the IP lockout and account protection as a failed
        log-in does; while either is in force, ``TooManyAttempts``."""
        ...
