"""The security trail as its owner sees it."""

from __future__ import annotations

import uuid

from bastion.audit.model import AuditEvent, as_seen_by_owner
from bastion.core.pagination import Page, page_of
from bastion.storage import UnitOfWorkFactory


class AuditService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def security_events(
        self, user_id: uuid.UUID, *, limit: int, before: int | None = None
    ) -> Page[AuditEvent, int]:
        """A user's own events, newest first; ``next_cursor`` is the ``before`` of the next page."""
        async with self._uow(read_only=True) as uow:
            events = await uow.audit.list(user_id=user_id, before=before, limit=limit + 1)
        return page_of(
            [as_seen_by_owner(item) for item in events], limit, lambda item: item.id or 0
        )
