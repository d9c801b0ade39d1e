from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from bastion.owners.model import EmailChange


class EmailChangeRepository(Protocol):
    async def add(self, change: EmailChange) -> None: ...

    async def get(self, token_hash: str) -> EmailChange | None: ...

    async def spend(self, token_hash: str, now: datetime) -> bool:
        """Mark the link used; False if someone else used it first."""
        ...

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None: ...
