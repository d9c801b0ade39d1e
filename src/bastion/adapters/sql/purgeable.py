"""Rows past their retention: the ``PurgeableRows`` port.

A batch is one statement: ``DELETE … WHERE key IN (SELECT key … WHERE <ended before> ORDER BY
<that moment> LIMIT n)``; PostgreSQL gets ``key = ANY(ARRAY(SELECT …))``, which it runs as one
walk of the moment's index and n primary-key lookups (given ``IN``, it chose to scan the whole
table for each batch). Ordering by the moment keeps the walk on the index however many rows
qualify, oldest first. Ended sessions are found by expiry and by revocation in separate
batches: one condition over both columns would have PostgreSQL gather every candidate of both
indexes before the limit applies. A session's refresh tokens go with it (the foreign key
cascades). ``docs/operations.md`` shows the plans.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Delete, Table, any_, bindparam, delete, func, select
from sqlalchemy.sql.elements import ColumnElement

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.retention.model import Purgeable


@dataclass(frozen=True, slots=True)
class _Rows:
    table: Table
    key: Column[Any]
    ended_at: Column[datetime]  # when such a row ended
    condition: ColumnElement[bool] | None = None  # what else such a row is


_audit, _sessions, _outbox = tables.audit_events, tables.sessions, tables.outbox
_stream = tables.stream_events
_verification, _reset = tables.email_verification_tokens, tables.password_reset_tokens
_invitation, _change = tables.invitation_tokens, tables.email_change_tokens
_KINDS = {
    Purgeable.AUDIT_EVENTS: _Rows(_audit, _audit.c.id, _audit.c.occurred_at),
    Purgeable.EXPIRED_SESSIONS: _Rows(_sessions, _sessions.c.id, _sessions.c.expires_at),
    Purgeable.REVOKED_SESSIONS: _Rows(_sessions, _sessions.c.id, _sessions.c.revoked_at),
    Purgeable.VERIFICATION_TOKENS: _Rows(
        _verification, _verification.c.token_hash, _verification.c.expires_at
    ),
    Purgeable.RESET_TOKENS: _Rows(_reset, _reset.c.token_hash, _reset.c.expires_at),
    Purgeable.INVITATION_TOKENS: _Rows(
        _invitation, _invitation.c.token_hash, _invitation.c.expires_at
    ),
    Purgeable.EMAIL_CHANGE_TOKENS: _Rows(_change, _change.c.token_hash, _change.c.expires_at),
    Purgeable.SENT_EMAILS: _Rows(_outbox, _outbox.c.id, _outbox.c.sent_at),
    Purgeable.STREAM_EVENTS: _Rows(_stream, _stream.c.id, _stream.c.occurred_at),
    # "sent_at IS NULL" lets the outbox's (sent_at, failed_at, …) index find them.
    Purgeable.FAILED_EMAILS: _Rows(
        _outbox, _outbox.c.id, _outbox.c.failed_at, _outbox.c.sent_at.is_(None)
    ),
}


@functools.cache
def purge_batch(kind: Purgeable, dialect: str) -> Delete:
    rows = _KINDS[kind]
    ended = rows.ended_at < bindparam("before", type_=rows.ended_at.type)
    chosen = (
        select(rows.key)
        .where(ended if rows.condition is None else rows.condition & ended)
        .order_by(rows.ended_at)
        .limit(bindparam("limit"))
        .scalar_subquery()
    )
    if dialect == "postgresql":
        return delete(rows.table).where(rows.key == any_(func.array(chosen)))
    return delete(rows.table).where(rows.key.in_(chosen))


class SqlPurgeableRows:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def delete(self, kind: Purgeable, before: datetime, limit: int) -> int:
        statement = purge_batch(kind, self._db.dialect)
        result = await self._db.execute(statement, {"before": before, "limit": limit})
        return result.rowcount
