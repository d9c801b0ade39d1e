from __future__ import annotations

from typing import Protocol

from bastion.tokens.model import SigningKey


class SigningKeyRepository(Protocol):
    async def list(self) -> list[SigningKey]: ...

    async def add(self, key: SigningKey) -> None: ...
