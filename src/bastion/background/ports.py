from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class Leases(Protocol):
    """Named leases shared by every instance over the database: one holder at a time."""

    async def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take the lease ``name`` for ``holder`` until ``now + ttl`` if ``may_take`` allows it;
        whether it was taken. One statement: of instances asking at once, one gets it."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease back, if ``holder`` still holds it."""
        ...
