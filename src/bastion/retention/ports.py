from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bastion.retention.model import Purgeable


class PurgeableRows(Protocol):
    async def delete(self, kind: Purgeable, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows of ``kind`` that ended before ``before``, the oldest
        first (a session with its refresh tokens); how many events, sessions, tokens or emails
        went."""
        ...
