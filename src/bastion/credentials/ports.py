from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from bastion.credentials.model import ServiceKey


class ServiceKeyRepository(Protocol):
    async def add(self, key: ServiceKey, key_hash: str) -> None: ...

    async def by_hash(self, key_hash: str) -> ServiceKey | None: ...

    async def list(self) -> list[ServiceKey]:
        """Every key, revoked ones too, oldest first."""
        ...

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        """Revoke the key (again is fine); False if there is no such key."""
        ...
