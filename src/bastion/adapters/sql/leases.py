"""The leases table: the ``Leases`` port, each call one statement."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction

_leases = tables.leases.c
RELEASE = delete(tables.leases).where(
    _leases.name == bindparam("name"), _leases.holder == bindparam("holder")
)


@functools.cache
def take_lease(dialect: str) -> ReturningInsert[tuple[str]]:
    """Insert the lease, or take over the row when ``may_take`` allows it; a row comes back
    only if the lease was taken. The row's lock makes concurrent takers wait for each other, and
    each sees the row as the one before it left it."""
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = upsert(tables.leases).values(
        name=bindparam("name"),
        holder=bindparam("holder"),
        expires_at=bindparam("expires_at", type_=_leases.expires_at.type),
    )
    return statement.on_conflict_do_update(
        index_elements=[_leases.name],
        set_={"holder": statement.excluded.holder, "expires_at": statement.excluded.expires_at},
        where=or_(
            _leases.holder == statement.excluded.holder,
            _leases.expires_at <= bindparam("now", type_=_leases.expires_at.type),
        ),
    ).returning(_leases.name)


class SqlLeases:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        parameters = {"name": name, "holder": holder, "expires_at": now + ttl, "now": now}
        result = await self._db.execute(take_lease(self._db.dialect), parameters)
        return result.first() is not None

    async def release(self, name: str, holder: str) -> None:
        await self._db.execute(RELEASE, {"name": name, "holder": holder})
