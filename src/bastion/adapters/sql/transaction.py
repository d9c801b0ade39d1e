"""One unit of work's connection: a transaction begun at its first statement, and inserts that
nobody reads back sent together.

A log-in writes a session and an audit event; a sign-up, a token, an email and an event. Sent one
by one inside BEGIN and COMMIT, each costs a round trip, and on the busy paths the round trips
cost more CPU than the rows. Here such inserts wait until the next statement or the commit and
then go as one statement (PostgreSQL runs INSERTs inside WITH). A unit of work made only of
them commits as that one statement without BEGIN and COMMIT: a single statement is atomic.

A unit of work may also name a condition for its writes (``require``): on PostgreSQL the waiting
inserts then select their rows from the condition's, locked for share, so that one statement
both checks the condition and writes, and writes nothing when it does not hold.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    CTE,
    CursorResult,
    Insert,
    Select,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import Executable

Row = dict[str, Any]
# Which inserts wait together: each table with the columns its row sets, in order.
Shape = tuple[tuple[Table, tuple[str, ...]], ...]


class Condition:
    """What a unit of work's writes require: a query that finds a row while they may go ahead
    (built once, at import), and the error to raise when it finds none."""

    def __init__(self, query: Select[Any], error: Callable[[], Exception]) -> None:
        self.query = query
        # On PostgreSQL the rows found stay as they are until the transaction (or the single
        # statement) ends: a concurrent change waits, and a change already under way is waited
        # for and then seen (READ COMMITTED re-reads a locked row once it is released).
        self.locked = query.with_for_update(read=True)
        self.error = error


class SqlTransaction:
    """The connection of one unit of work.

    ``single_statement`` promises that the unit of work sends one statement: it runs in
    autocommit on PostgreSQL, and a second statement is refused.
    """

    def __init__(self, connection: AsyncConnection, *, single_statement: bool = False) -> None:
        self._connection = connection
        self._transaction: AsyncTransaction | None = None
        self._waiting: list[tuple[Table, Row]] = []
        self._condition: tuple[Condition, Row] | None = None
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

    def require(self, condition: Condition, parameters: Row) -> None:
        """Write only while ``condition`` finds a row: checked with the first statement sent
        (which carries the waiting inserts), its rows then left unchanged until the end."""
        self._ensure_open()
        self._condition = (condition, parameters)

    async def commit(self) -> None:
        self._ensure_open()
        pending = bool(self._waiting) or self._condition is not None
        if self._transaction is None and pending and self.dialect == "postgresql":
            await self._autocommit()
        elif pending:
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
        condition, self._condition = self._condition, None
        if condition is not None:
            await self._send_on_condition(*condition, waiting)
            return
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

    async def _send_on_condition(
        self, condition: Condition, parameters: Row, waiting: list[tuple[Table, Row]]
    ) -> None:
        if self.dialect != "postgresql":
            # SQLite runs one write transaction at a time: nothing changes between the check
            # and the inserts.
            if (await self._send(condition.query, parameters)).first() is None:
                raise condition.error()
            for table, row in waiting:
                await self._send(_insert(table), row)
            return
        shape = tuple((table, tuple(row)) for table, row in waiting)
        values = {
            f"w{index}_{column}": value
            for index, (_, row) in enumerate(waiting)
            for column, value in row.items()
        }
        statement = _inserts_on_condition(condition, shape)
        if not (await self._send(statement, {**parameters, **values})).scalar_one():
            raise condition.error()

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
        insert(table).values(_values(table, index, columns)).cte(f"w{index}")
        for index, (table, columns) in enumerate(shape)
    ]
    return select(literal(1)).add_cte(*inserts)


@functools.lru_cache(maxsize=64)
def _inserts_on_condition(condition: Condition, shape: Shape) -> Select[Any]:
    """``WITH held AS (SELECT ... FOR SHARE), w0 AS (INSERT ... SELECT ... FROM held), ...
    SELECT count(*) FROM held``: every insert takes its row from the condition's, so none is
    made when it finds nothing. Built once per condition and shape."""
    held = condition.locked.cte("held")
    inserts = [
        insert(table)
        .from_select(list(columns), _selected_from(held, _values(table, index, columns)))
        .cte(f"w{index}")
        for index, (table, columns) in enumerate(shape)
    ]
    return select(func.count()).select_from(held).add_cte(*inserts)


def _values(table: Table, index: int, columns: tuple[str, ...]) -> dict[str, Any]:
    return {
        column: bindparam(f"w{index}_{column}", type_=table.c[column].type) for column in columns
    }


def _selected_from(held: CTE, values: dict[str, Any]) -> Select[Any]:
    return select(*(value.label(column) for column, value in values.items())).select_from(held)
