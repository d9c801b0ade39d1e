"""How PostgreSQL plans the statements behind the requests the --users profile measures.

The statements are Bastion's own: the repositories run against the seeded database while a
listener records what they send. Each is then explained twice: with its parameters (the custom
plan PostgreSQL makes for the first executions of a prepared statement) and as a generic plan
(the one it may switch to after five executions, which knows no parameter values). A plan passes
when every table is reached through an index, and the admin email search through its trigram
index rather than by walking the users in id order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bastion.accounts.model import Role
from bastion.adapters.sql.audit import SqlAuditLog
from bastion.adapters.sql.sessions import SqlSessionRepository
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.adapters.sql.users import SqlUserRepository

TRIGRAM_INDEX = "ix_users_email_trgm"
EXPLAINED = {"SELECT", "UPDATE", "INSERT", "WITH", "DELETE"}


@dataclass(frozen=True)
class Probe:
    """The values the explained statements look up: real rows of the seeded database."""

    email: str
    user_id: uuid.UUID
    session_id: uuid.UUID
    refresh_token_hash: str
    email_fragment: str
    deep_cursor: uuid.UUID


@dataclass(frozen=True)
class Plan:
    request: str
    statement: str
    custom: list[str]  # the plan's nodes, outermost first: "Index Scan using pk_users on users"
    generic: list[str]
    met: bool
    note: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


Calls = list[tuple[str, Callable[[SqlTransaction], Awaitable[object]]]]


def requests(probe: Probe) -> Calls:
    """What each measured request asks the database (its reads and updates, not its inserts)."""
    now = datetime.now(UTC)
    return [
        ("login", lambda db: SqlUserRepository(db).get_by_email(probe.email)),
        ("/me (session check)", lambda db: SqlSessionRepository(db).get_many([probe.session_id])),
        ("/me (user)", lambda db: SqlUserRepository(db).get(probe.user_id)),
        (
            "refresh (spend the token)",
            lambda db: SqlSessionRepository(db).rotate_refresh_token(
                probe.refresh_token_hash, "0" * 64, now
            ),
        ),
        (
            "refresh (resume the session)",
            lambda db: SqlSessionRepository(db).resume(probe.session_id, now),
        ),
        ("admin users, first page", lambda db: _search(db)),
        ("admin users, email search", lambda db: _search(db, email_contains=probe.email_fragment)),
        ("admin users, one role", lambda db: _search(db, role=Role.ADMIN)),
        ("admin users, deep cursor", lambda db: _search(db, after=probe.deep_cursor)),
        ("security events", lambda db: SqlAuditLog(db).list(user_id=probe.user_id, limit=21)),
    ]


async def _search(
    db: SqlTransaction,
    *,
    email_contains: str | None = None,
    role: Role | None = None,
    after: uuid.UUID | None = None,
) -> object:
    return await SqlUserRepository(db).search(
        email_contains=email_contains, role=role, after=after, limit=51
    )


async def explain_all(database_url: str, probe: Probe) -> list[Plan]:
    engine = create_async_engine(database_url, pool_size=1)
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in EXPLAINED:
            sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    plans: list[Plan] = []
    try:
        for request, call in requests(probe):
            sent.clear()
            transaction = SqlTransaction(await engine.connect())
            try:
                await call(transaction)
            finally:
                # Rolled back: the refresh statements write, and nothing the probes do is kept.
                await transaction.close()
            statements = list(sent)
            async with engine.connect() as connection:
                for statement, parameters in statements:
                    plans.append(await _explain(connection, request, statement, parameters))
    finally:
        await engine.dispose()
    return plans


async def _explain(
    connection: AsyncConnection, request: str, statement: str, parameters: Any
) -> Plan:
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    arguments = tuple(parameters or ())
    custom = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *arguments)
    # EXECUTE takes no protocol parameters: its arguments go in as literals, quoted by the server.
    literals = [await _literal(driver, value) for value in arguments]
    execute = "EXECUTE bench_explained" + (f"({', '.join(literals)})" if literals else "")
    async with driver.transaction():
        await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await driver.execute(f"PREPARE bench_explained AS {statement}")
        try:
            generic = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {execute}")
        finally:
            await driver.execute("DEALLOCATE bench_explained")
    custom_nodes, generic_nodes = _nodes(custom), _nodes(generic)
    met, note = _judge(request, custom_nodes + generic_nodes)
    return Plan(request, " ".join(statement.split()), custom_nodes, generic_nodes, met, note)


async def _literal(driver: Any, value: Any) -> str:
    if value is None:
        return "NULL"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    quoted: str = await driver.fetchval("SELECT quote_literal($1::text)", text)
    return quoted


def _nodes(explained: Any) -> list[str]:
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    return [_describe(node) for node in _walk(plan)]


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)


def _describe(node: dict[str, Any]) -> str:
    text = node["Node Type"]
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    if "Filter" in node:
        text += f" (filter {node['Filter']})"
    return text


def _judge(request: str, nodes: list[str]) -> tuple[bool, str]:
    scans = [node for node in nodes if node.startswith("Seq Scan")]
    if scans:
        return False, "reads a table sequentially: " + "; ".join(scans)
    if "email search" in request and not any(TRIGRAM_INDEX in node for node in nodes):
        return False, f"walks the users without {TRIGRAM_INDEX}"
    return True, ""
