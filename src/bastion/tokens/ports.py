from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bastion.tokens.model import SigningKey


class SigningKeyRepository(Protocol):
    async def list(self) -> list[SigningKey]: ...

    async def add(self, key: SigningKey) -> None: ...

    async def revoke(self, kid: str, now: datetime) -> bool:
        """Mark the key revoked; False if there is no such key or it was revoked already."""
        ...
