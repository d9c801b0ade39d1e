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

An insert may also be made for the account at an address (``insert_later_for``): it selects its
row from the users table, so the database finds the account, or none, in the statement that
writes, and the statements sent are the same whether or not the account exists.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    CTE,
    BindParameter,
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

from bastion.adapters.sql import tables
from bastion.core.account_at import AccountAt

Row = dict[str, Any]
# The parameter that carries the address of an insert made for an account.
ACCOUNT_EMAIL = "account_email"


@dataclass(frozen=True, slots=True)
class AccountCondition:
    """How an insert made for the account at an address uses it: ``id_column`` takes the
    account's id; with ``only_if_found`` the row is inserted only when there is such an account,
    otherwise always (``id_column`` then NULL when there is none)."""

    id_column: str | None
    only_if_found: bool
    awaiting_verification: bool


class _Waiting(NamedTuple):
    table: Table
    row: Row
    condition: AccountCondition | None = None
    email: str | None = None


# Which inserts wait together: each table with the columns its row sets, in order, and how it
# depends on an account.
Shape = tuple[tuple[Table, tuple[str, ...], AccountCondition | None], ...]


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
        self._waiting: list[_Waiting] = []
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
        self._waiting.append(_Waiting(table, row))

    def insert_later_for(
        self,
        account: AccountAt,
        table: Table,
        row: Row,
        *,
        id_column: str | None = None,
        only_if_found: bool = True,
    ) -> None:
        """Insert ``row`` for ``account``, as ``insert_later`` does: with ``only_if_found`` only
        if there is such an account, else always; ``id_column`` takes the account's id."""
        self._ensure_open()
        condition = AccountCondition(id_column, only_if_found, account.awaiting_verification)
        self._waiting.append(_Waiting(table, row, condition, account.email))

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
        if self.dialect != "postgresql" or len(waiting) == 1:
            # One insert goes alone. SQLite has no INSERT inside WITH, and its statements cost no
            # network round trip.
            for entry in waiting:
                await self._send(*_alone(entry))
        else:
            shape = tuple((entry.table, tuple(entry.row), entry.condition) for entry in waiting)
            parameters: Row = {}
            for index, entry in enumerate(waiting):
                parameters.update(_parameters(entry, f"w{index}_"))
            await self._send(_inserts_together(shape), parameters)

    async def _send_on_condition(
        self, condition: Condition, parameters: Row, waiting: list[_Waiting]
    ) -> None:
        if any(entry.condition is not None for entry in waiting):
            # Nothing needs both yet, and each already decides in the statement that writes.
            raise RuntimeError("inserts made for an account cannot also wait for a condition")
        if self.dialect != "postgresql":
            # SQLite runs one write transaction at a time: nothing changes between the check
            # and the inserts.
            if (await self._send(condition.query, parameters)).first() is None:
                raise condition.error()
            for entry in waiting:
                await self._send(*_alone(entry))
            return
        shape = tuple((entry.table, tuple(entry.row)) for entry in waiting)
        values: Row = {}
        for index, entry in enumerate(waiting):
            values.update(_parameters(entry, f"w{index}_"))
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


def _alone(entry: _Waiting) -> tuple[Insert, Row]:
    """The statement and parameters of one waiting insert sent by itself."""
    if entry.condition is None:
        return _insert(entry.table), entry.row
    statement = _insert_for_account(entry.table, tuple(entry.row), entry.condition, "")
    return statement, _parameters(entry, "")


def _parameters(entry: _Waiting, prefix: str) -> Row:
    parameters = {f"{prefix}{column}": value for column, value in entry.row.items()}
    if entry.condition is not None:
        parameters[f"{prefix}{ACCOUNT_EMAIL}"] = entry.email
    return parameters


@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.lru_cache(maxsize=64)
def _inserts_together(shape: Shape) -> Select[Any]:
    """``WITH w0 AS (INSERT ...), w1 AS (INSERT ...) SELECT 1``, built once per shape."""
    inserts = []
    for index, (table, columns, condition) in enumerate(shape):
        prefix = f"w{index}_"
        if condition is None:
            statement = insert(table).values(
                {column: _parameter(table, column, prefix) for column in columns}
            )
        else:
            statement = _insert_for_account(table, columns, condition, prefix)
        inserts.append(statement.cte(f"w{index}"))
    return select(literal(1)).add_cte(*inserts)


@functools.lru_cache(maxsize=64)
def _inserts_on_condition(
    condition: Condition, shape: tuple[tuple[Table, tuple[str, ...]], ...]
) -> Select[Any]:
    """``WITH held AS (SELECT ... FOR SHARE), w0 AS (INSERT ... SELECT ... FROM held), ...
    SELECT count(*) FROM held``: every insert takes its row from the condition's, so none is
    made when it finds nothing. Built once per condition and shape."""
    held = condition.locked.cte("held")
    inserts = [
        insert(table)
        .from_select(list(columns), _selected_from(held, table, columns, f"w{index}_"))
        .cte(f"w{index}")
        for index, (table, columns) in enumerate(shape)
    ]
    return select(func.count()).select_from(held).add_cte(*inserts)


def _selected_from(held: CTE, table: Table, columns: tuple[str, ...], prefix: str) -> Select[Any]:
    values = [_parameter(table, column, prefix).label(column) for column in columns]
    return select(*values).select_from(held)


@functools.lru_cache(maxsize=64)
def _insert_for_account(
    table: Table, columns: tuple[str, ...], condition: AccountCondition, prefix: str
) -> Insert:
    """``INSERT INTO table (...) SELECT :values..., users.id FROM users WHERE users.email = ...``
    (only when found), or with the id as a subquery that may be NULL (always)."""
    users = tables.users.c
    found = [users.email == bindparam(f"{prefix}{ACCOUNT_EMAIL}", type_=users.email.type)]
    if condition.awaiting_verification:
        found += [users.is_active.is_(True), users.is_verified.is_(False)]
    targets: list[str] = list(columns)
    values: list[Any] = [_parameter(table, column, prefix) for column in columns]
    if condition.id_column is not None:
        targets.append(condition.id_column)
        account_id = select(users.id).where(*found).scalar_subquery()
        values.append(users.id if condition.only_if_found else account_id)
    source = select(*values)
    if condition.only_if_found:
        source = source.where(*found)
    return insert(table).from_select(targets, source)


def _parameter(table: Table, column: str, prefix: str) -> BindParameter[Any]:
    return bindparam(f"{prefix}{column}", type_=table.c[column].type)
