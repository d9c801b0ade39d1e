"""The security trail as its owner sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from bastion.audit.model import AuditEvent
from bastion.storage import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[AuditEvent]
    next_cursor: int | None


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def security_events(
        self, user_id: uuid.UUID, *, limit: int, before: int | None = None
    ) -> EventPage:
        """A user's own events, newest first; ``next_cursor`` is the ``before`` of the next page."""
        async with self._uow(read_only=True) as uow:
            events = await uow.audit.list(user_id=user_id, before=before, limit=limit + 1)
        page = events[:limit]
        return EventPage(page, page[-1].id if len(events) > limit and page else None)
