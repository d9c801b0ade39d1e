"""The audit_events table: the ``AuditLog`` port over one unit of work's transaction."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import String, and_, cast, or_, select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import Row, SqlTransaction
from bastion.audit.model import AuditEvent, EventType, scrub
from bastion.core.account_at import AccountAt


class SqlAuditLog:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection
        # What this transaction recorded, for observers told once it commits.
        self.recorded: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)
        self._db.insert_later(tables.audit_events, {**_row(event), "user_id": event.user_id})

    async def record_for(self, account: AccountAt, event: AuditEvent) -> None:
        self.recorded.append(event)
        self._db.insert_later_for(
            account, tables.audit_events, _row(event), id_column="user_id", only_if_found=False
        )

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        type: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        a = tables.audit_events.c
        conditions = []
        if user_id is not None:
            conditions.append(a.user_id == user_id)
        if type is not None:
            conditions.append(a.type == type)
        if before is not None:
            conditions.append(a.id < before)
        query = (
            select(tables.audit_events)
            .where(and_(True, *conditions))
            .order_by(a.id.desc())
            .limit(limit)
        )
        return [
            AuditEvent(
                id=row["id"],
                type=EventType(row["type"]),
                occurred_at=row["occurred_at"],
                user_id=row["user_id"],
                ip=row["ip"],
                user_agent=row["user_agent"],
                details=row["details"],
            )
            for row in (await self._db.execute(query)).mappings()
        ]

    async def erase(self, email: str) -> int:
        # JSON columns query differently on each database, so candidates are found by a text
        # match (the address as typed and as JSON escapes it) and rewritten here.
        a = tables.audit_events.c
        as_text = cast(a.details, String)
        forms = {email, json.dumps(email)[1:-1]}
        query = select(a.id, a.details).where(
            or_(*(as_text.ilike(f"%{_like_escape(form)}%", escape="\\") for form in forms))
        )
        changed = 0
        for row in (await self._db.execute(query)).all():
            details = scrub(row.details, email)
            if details != row.details:
                await self._db.execute(
                    update(tables.audit_events).where(a.id == row.id).values(details=details)
                )
                changed += 1
        return changed


def _row(event: AuditEvent) -> Row:
    """The columns of ``event`` but its user."""
    return {
        "occurred_at": event.occurred_at,
        "type": event.type.value,
        "ip": event.ip,
        "user_agent": event.user_agent[:512] if event.user_agent else None,
        "details": event.details,
    }


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
