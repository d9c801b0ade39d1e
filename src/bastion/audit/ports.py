from __future__ import annotations

import uuid
from typing import Protocol

from bastion.audit.model import AuditEvent
from bastion.core.account_at import AccountAt


class AuditObserver(Protocol):
    """Told about each event once the transaction that recorded it commits (metrics)."""

    def recorded(self, event: AuditEvent) -> None: ...


class AuditLog(Protocol):
    async def record(self, event: AuditEvent) -> None: ...

    async def record_for(self, account: AccountAt, event: AuditEvent) -> None:
        """Record ``event`` about ``account``: its user is the account's id if there is such an
        account, and none otherwise. The event is recorded either way."""
        ...

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        type: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        """Events newest first; ``before`` is the id of the last event of the previous page."""
        ...

    async def erase(self, email: str) -> int:
        """Replace ``email`` wherever it appears in event details; returns the events changed.

        Events keep their user id, which becomes a pseudonym once the user is deleted.
        """
        ...
