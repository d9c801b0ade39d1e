"""The outbox table: the ``Outbox`` port over one unit of work's transaction."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.sql.dml import Update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import Row, SqlTransaction
from bastion.core.account_at import AccountAt
from bastion.core.secrets import Sealer
from bastion.mail.model import EmailMessage, QueuedMessage

MARK_SENT = (
    update(tables.outbox)
    .where(tables.outbox.c.id.in_(bindparam("message_ids", expanding=True)))
    .values(sent_at=bindparam("now"), locked_until=None, last_error=None)
)
RELEASE_MESSAGES = (
    update(tables.outbox)
    .where(
        tables.outbox.c.id.in_(bindparam("message_ids", expanding=True)),
        tables.outbox.c.sent_at.is_(None),
    )
    .values(locked_until=None, attempts=tables.outbox.c.attempts - 1)
)
FORGET_MESSAGES = delete(tables.outbox).where(
    tables.outbox.c.id.in_(bindparam("message_ids", expanding=True))
)
UPDATE_OUTBOX_MESSAGE = update(tables.outbox).where(tables.outbox.c.id == bindparam("message_id"))


@functools.cache
def claim_due_messages(dialect: str) -> Update:
    o = tables.outbox.c
    now = bindparam("now", type_=o.next_attempt_at.type)
    due = (
        select(o.id)
        .where(
            o.sent_at.is_(None),
            o.failed_at.is_(None),
            o.next_attempt_at <= now,
            or_(o.locked_until.is_(None), o.locked_until < now),
        )
        .order_by(o.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        # Instances polling at once each take different rows instead of waiting on a lock.
        due = due.with_for_update(skip_locked=True)
    return (
        update(tables.outbox)
        .where(o.id.in_(due.scalar_subquery()))
        .values(locked_until=bindparam("lease_until"), attempts=o.attempts + 1)
        .returning(o.id, o.recipient, o.kind, o.payload, o.attempts)
    )


class SqlOutbox:
    """The outbox table. Payloads are sealed: until delivered they carry one-time links."""

    def __init__(self, connection: SqlTransaction, sealer: Sealer) -> None:
        self._db = connection
        self._sealer = sealer

    async def add(self, message: EmailMessage, now: datetime) -> None:
        self._db.insert_later(tables.outbox, self._row(message, now))

    async def add_for(self, account: AccountAt, message: EmailMessage, now: datetime) -> None:
        self._db.insert_later_for(account, tables.outbox, self._row(message, now))

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[QueuedMessage]:
        statement = claim_due_messages(self._db.dialect)
        parameters = {"now": now, "limit": limit, "lease_until": lease_until}
        claimed = []
        for row in (await self._db.execute(statement, parameters)).mappings():
            content = json.loads(self._sealer.open(row["payload"]))
            content.setdefault("locale", None)  # queued before messages had a layout
            message = EmailMessage(recipient=row["recipient"], kind=row["kind"], **content)
            claimed.append(QueuedMessage(id=row["id"], message=message, attempts=row["attempts"]))
        return sorted(claimed, key=lambda queued: queued.id)

    async def mark_sent(self, message_ids: Sequence[int], now: datetime) -> None:
        await self._db.execute(MARK_SENT, {"message_ids": list(message_ids), "now": now})

    async def release(self, message_ids: Sequence[int]) -> None:
        await self._db.execute(RELEASE_MESSAGES, {"message_ids": list(message_ids)})

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._set(
            message_id, next_attempt_at=next_attempt_at, locked_until=None, last_error=error
        )

    async def mark_failed(self, message_id: int, now: datetime, error: str) -> None:
        await self._set(message_id, failed_at=now, locked_until=None, last_error=error)

    async def backlog(self) -> int:
        o = tables.outbox.c
        query = select(func.count()).where(o.sent_at.is_(None), o.failed_at.is_(None))
        return int((await self._db.execute(query)).scalar_one())

    async def forget_recipient(self, recipient: str) -> None:
        await self._db.execute(delete(tables.outbox).where(tables.outbox.c.recipient == recipient))

    async def forget(self, message_ids: Sequence[int]) -> None:
        await self._db.execute(FORGET_MESSAGES, {"message_ids": list(message_ids)})

    def _row(self, message: EmailMessage, now: datetime) -> Row:
        payload = json.dumps(
            {
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "action_url": message.action_url,
                "action_label": message.action_label,
                "locale": message.locale,
            }
        ).encode()
        return {
            "recipient": message.recipient,
            "kind": message.kind,
            "payload": self._sealer.seal(payload),
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        }

    async def _set(self, message_id: int, **values: Any) -> None:
        await self._db.execute(UPDATE_OUTBOX_MESSAGE, {"message_id": message_id, **values})
