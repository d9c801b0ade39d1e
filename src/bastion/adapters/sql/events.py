"""The stream_events table: the ``EventLog`` port, and PostgreSQL's wake-ups for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.events.model import Position, StreamEvent, StreamEventType

CHANNEL = "bastion_stream_events"  # notified by the table's trigger (migration 0012)
_events = tables.stream_events.c
EVENTS_AFTER = (
    select(tables.stream_events)
    .where(_events.id > bindparam("cursor"))
    .order_by(_events.id)
    .limit(bindparam("limit"))
)
NEWEST = select(func.coalesce(func.max(_events.id), 0))
BOUNDS = select(func.coalesce(func.max(_events.id), 0), func.min(_events.id))
OCCURRED_AT = select(_events.occurred_at).where(_events.id == bindparam("id"))


class SqlEventLog:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def publish(self, *events: StreamEvent) -> None:
        for event in events:
            self._db.insert_later(
                tables.stream_events,
                {"occurred_at": event.occurred_at, "type": event.type.value, "data": event.fields},
            )

    async def after(self, cursor: int, limit: int) -> list[StreamEvent]:
        result = await self._db.execute(EVENTS_AFTER, {"cursor": cursor, "limit": limit})
        return [
            StreamEvent(
                id=row["id"],
                type=StreamEventType(row["type"]),
                occurred_at=row["occurred_at"],
                fields=row["data"],
            )
            for row in result.mappings()
        ]

    async def newest_id(self) -> int:
        newest: int = (await self._db.execute(NEWEST)).scalar_one()
        return newest

    async def position(self, event_id: int) -> Position:
        bounds: Any = (await self._db.execute(BOUNDS)).one()
        newest, oldest = int(bounds[0]), bounds[1]
        occurred_at = (await self._db.execute(OCCURRED_AT, {"id": event_id})).scalar_one_or_none()
        return Position(newest=newest, oldest=oldest, occurred_at=occurred_at)


class PostgresWakeups:
    """LISTEN on the channel the stream_events trigger notifies, on a connection of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._listener: Any = None

    async def start(self, on_events: Callable[[], None]) -> bool:
        if self._engine.dialect.name != "postgresql":
            return False
        connection = await self._engine.connect()
        self._connection = connection
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection

            def listener(*_: object) -> None:
                on_events()

            await driver.add_listener(CHANNEL, listener)
        except BaseException:
            # Stopped (or failed) while starting: give the connection back all the same.
            self._connection = None
            await asyncio.shield(connection.close())
            raise
        self._listener = listener
        return True

    async def stop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.remove_listener(CHANNEL, self._listener)
        with contextlib.suppress(Exception):
            await connection.close()
