"""Rows past their retention: the ``PurgeableRows`` port.

Each batch is one ``DELETE … WHERE key IN (SELECT key … WHERE <ended before> LIMIT n)``, whose
inner select walks one index (``docs/operations.md`` shows the plans). Ended sessions are found
by expiry and by revocation in separate batches: one condition on both columns would make
PostgreSQL gather every candidate row of both indexes for each batch before the limit applies.
A session's refresh tokens go with it (the foreign key cascades).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Delete, Table, bindparam, delete, select
from sqlalchemy.sql.elements import ColumnElement

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.retention.model import Purgeable


def _before(column: Column[datetime]) -> ColumnElement[bool]:
    return column < bindparam("before", type_=column.type)


def _delete_some(table: Table, key: Column[object], condition: ColumnElement[bool]) -> Delete:
    chosen = select(key).where(condition).limit(bindparam("limit")).scalar_subquery()
    return delete(table).where(key.in_(chosen))


_audit, _sessions, _outbox = tables.audit_events, tables.sessions, tables.outbox
_verification, _reset = tables.email_verification_tokens, tables.password_reset_tokens
PURGE_BATCHES: dict[Purgeable, Delete] = {
    Purgeable.AUDIT_EVENTS: _delete_some(_audit, _audit.c.id, _before(_audit.c.occurred_at)),
    Purgeable.EXPIRED_SESSIONS: _delete_some(
        _sessions, _sessions.c.id, _before(_sessions.c.expires_at)
    ),
    Purgeable.REVOKED_SESSIONS: _delete_some(
        _sessions, _sessions.c.id, _before(_sessions.c.revoked_at)
    ),
    Purgeable.VERIFICATION_TOKENS: _delete_some(
        _verification, _verification.c.token_hash, _before(_verification.c.expires_at)
    ),
    Purgeable.RESET_TOKENS: _delete_some(_reset, _reset.c.token_hash, _before(_reset.c.expires_at)),
    Purgeable.SENT_EMAILS: _delete_some(_outbox, _outbox.c.id, _before(_outbox.c.sent_at)),
    # "sent_at IS NULL" lets the outbox's (sent_at, failed_at, …) index find them.
    Purgeable.FAILED_EMAILS: _delete_some(
        _outbox, _outbox.c.id, _outbox.c.sent_at.is_(None) & _before(_outbox.c.failed_at)
    ),
}


class SqlPurgeableRows:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def delete(self, kind: Purgeable, before: datetime, limit: int) -> int:
        result = await self._db.execute(PURGE_BATCHES[kind], {"before": before, "limit": limit})
        return result.rowcount
