from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
