"""Bulk seeding: many verified users at once, for load tests and drills, not for production sign-up.

A million users one use case at a time would take hours (a hash and a transaction each). Here
every user shares one password hash (made once by the caller: test users are not secrets), and
rows stream in: COPY on PostgreSQL, batched inserts on SQLite. Each user gets the "registered"
audit event a sign-up leaves, marked as seeded, so the audit trail grows with the users.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Insert, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.accounts.errors import EmailTaken
from bastion.accounts.model import FIRST_SECURITY_VERSION, Role
from bastion.adapters.sql import tables
from bastion.adapters.sql.tables import UtcDateTime
from bastion.audit.model import EventType

SQLITE_BATCH = 5000
USER_COLUMNS = (
    "id",
    "email",
    "password_hash",
    "role",
    "is_verified",
    "is_active",
    "created_at",
    "updated_at",
    "security_version",
)
SEEDED = {"seeded": True}
UNIQUE_VIOLATION = "23505"
STATEMENT_TIMEOUT_SECONDS = 3600
# _registered_events, as PostgreSQL runs it on asyncpg's connection.
REGISTERED_EVENTS_PG = (
    "INSERT INTO audit_events (occurred_at, type, user_id, details) "
    "SELECT $1, $2, id, $3::json FROM users WHERE created_at = $1 AND password_hash = $4"
)


async def seed_users(
    engine: AsyncEngine, emails: Iterable[str], password_hash: str, role: Role, now: datetime
) -> int:
    """Insert a verified, active user per address, in one transaction; returns how many.

    The addresses must be canonical already (``core.email_address``): a million of them are not
    parsed one by one. An address already taken fails the whole seeding: nothing is inserted.
    ``password_hash`` must be fresh (a new salt), since it tells this seeding's users from
    everyone else's.
    """
    rows = _users(emails, password_hash, role, now)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                count = await _copy(connection, rows, password_hash, now)
            else:
                count = await _insert_in_batches(connection, rows)
                await connection.execute(_registered_events(password_hash, now))
    except Exception as exc:
        # COPY runs on asyncpg's own connection, so its error is asyncpg's, not SQLAlchemy's.
        if isinstance(exc, IntegrityError) or getattr(exc, "sqlstate", None) == UNIQUE_VIOLATION:
            raise EmailTaken("An address is taken already; no user was seeded.") from exc
        raise
    return count


def _users(
    emails: Iterable[str], password_hash: str, role: Role, now: datetime
) -> Iterator[tuple[Any, ...]]:
    for email in emails:
        yield (
            uuid.uuid4(),
            email,
            password_hash,
            role.value,
            True,
            True,
            now,
            now,
            FIRST_SECURITY_VERSION,
        )


async def _copy(
    connection: AsyncConnection, rows: Iterator[tuple[Any, ...]], password_hash: str, now: datetime
) -> int:
    raw = await connection.get_raw_connection()
    # asyncpg's own connection: COPY streams the rows in its binary format. Both statements
    # take longer than the pool's 15 s command timeout at a million rows, so they set their own.
    driver: Any = raw.driver_connection
    counted = _Counted(rows)
    await driver.copy_records_to_table(
        "users", records=counted, columns=list(USER_COLUMNS), timeout=STATEMENT_TIMEOUT_SECONDS
    )
    await driver.execute(
        REGISTERED_EVENTS_PG,
        now,
        EventType.REGISTERED.value,
        json.dumps(SEEDED),
        password_hash,
        timeout=STATEMENT_TIMEOUT_SECONDS,
    )
    return counted.count


async def _insert_in_batches(connection: AsyncConnection, rows: Iterator[tuple[Any, ...]]) -> int:
    count = 0
    while batch := list(itertools.islice(rows, SQLITE_BATCH)):
        await connection.execute(
            insert(tables.users), [dict(zip(USER_COLUMNS, row, strict=True)) for row in batch]
        )
        count += len(batch)
    return count


def _registered_events(password_hash: str, now: datetime) -> Insert:
    """One "registered" event per user of this seeding, written by the database itself."""
    u = tables.users.c
    seeded = select(
        literal(now, UtcDateTime()),
        literal(EventType.REGISTERED.value),
        u.id,
        literal(SEEDED, JSON()),
    ).where(u.created_at == now, u.password_hash == password_hash)
    return insert(tables.audit_events).from_select(
        ["occurred_at", "type", "user_id", "details"], seeded
    )


class _Counted(Iterator[tuple[Any, ...]]):
    """The rows, counted as COPY consumes them."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows
        self.count = 0

    def __next__(self) -> tuple[Any, ...]:
        row = next(self._rows)
        self.count += 1
        return row
