"""One unit of work's connection: a transaction begun at its first statement, and inserts that
nobody reads back sent together.

A log-in writes a session and an audit event; a sign-up, a token, an email and an event. Sent one
by one inside BEGIN and COMMIT, each costs a round trip, and on the busy paths the round trips
cost more CPU than the rows. Here such inserts wait until the next statement or the commit and
then go as one statement (PostgreSQL runs INSERTs inside WITH). A unit of work made only of
them commits as that one statement without BEGIN and COMMIT: a single statement is atomic.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import CursorResult, Insert, Select, Table, bindparam, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import Executable

Row = dict[str, Any]
# Which inserts wait together: each table with the columns its row sets, in order.
Shape = tuple[tuple[Table, tuple[str, ...]], ...]


class SqlTransaction:
    """The connection of one unit of work.

    ``single_statement`` promises that the unit of work sends one statement: it runs in
    autocommit on PostgreSQL, and a second statement is refused.
    """

    def __init__(self, connection: AsyncConnection, *, single_statement: bool = False) -> None:
        self._connection = connection
        self._transaction: AsyncTransaction | None = None
        self._waiting: list[tuple[Table, Row]] = []
        self._committed = False
        self._statements_left = 1 if single_statement else None
        self.dialect = connection.dialect.name

    async def execute(
        self, statement: Executable, parameters: Row | None = None
    ) -> CursorResult[Any]:
        """Run ``statement`` in the transaction, after the inserts still waiting."""
        await self._begin()
        await self._send_waiting()
        return await self._send(statement, parameters)

    def insert_later(self, table: Table, row: Row) -> None:
        """Insert ``row`` with the next statement or at the commit; its outcome is not read."""
        self._ensure_open()
        self._waiting.append((table, row))

    async def commit(self) -> None:
        self._ensure_open()
        if self._transaction is None and self._waiting and self.dialect == "postgresql":
            await self._autocommit()
        elif self._waiting:
            await self._begin()
        await self._send_waiting()
        if self._transaction is not None:
            await self._transaction.commit()
        self._committed = True

    async def close(self) -> None:
        """Roll back what was not committed and give the connection back."""
        self._waiting.clear()
        try:
            if self._transaction is not None and self._transaction.is_active:
                await self._transaction.rollback()
        finally:
            await self._connection.close()

    async def _begin(self) -> None:
        self._ensure_open()
        if self._transaction is None:
            if self._statements_left is not None and self.dialect == "postgresql":
                await self._autocommit()
            self._transaction = await self._connection.begin()

    async def _autocommit(self) -> None:
        # One statement is atomic by itself: BEGIN and COMMIT would only add round trips.
        await self._connection.execution_options(isolation_level="AUTOCOMMIT")

    async def _send_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        if self.dialect != "postgresql":
            # SQLite has no INSERT inside WITH, and its statements cost no network round trip.
            for table, row in waiting:
                await self._send(_insert(table), row)
        elif len(waiting) == 1:
            [(table, row)] = waiting
            await self._send(_insert(table), row)
        else:
            shape = tuple((table, tuple(row)) for table, row in waiting)
            parameters = {
                f"w{index}_{column}": value
                for index, (_, row) in enumerate(waiting)
                for column, value in row.items()
            }
            await self._send(_inserts_together(shape), parameters)

    async def _send(self, statement: Executable, parameters: Row | None) -> CursorResult[Any]:
        if self._statements_left is not None:
            if self._statements_left == 0:
                raise RuntimeError("a single-statement unit of work sent a second statement")
            self._statements_left -= 1
        return await self._connection.execute(statement, parameters)

    def _ensure_open(self) -> None:
        if self._committed:
            raise RuntimeError("the unit of work has committed; open a new one")


@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.lru_cache(maxsize=64)
def _inserts_together(shape: Shape) -> Select[Any]:
    """``WITH w0 AS (INSERT ...), w1 AS (INSERT ...) SELECT 1``, built once per shape."""
    inserts = [
        insert(table)
        .values(
            {
                column: bindparam(f"w{index}_{column}", type_=table.c[column].type)
                for column in columns
            }
        )
        .cte(f"w{index}")
        for index, (table, columns) in enumerate(shape)
    ]
    return select(literal(1)).add_cte(*inserts)
