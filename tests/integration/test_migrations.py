"""Alembic is the only way the schema changes: it must go up, down and up again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.migrate import downgrade, upgrade
from tests.support import create_postgres_database, drop_postgres_database

TABLES = {
    "users",
    "email_verification_tokens",
    "password_reset_tokens",
    "sessions",
    "refresh_tokens",
    "signing_keys",
    "outbox",
    "audit_events",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    name, url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


def tables_in(async_url: str) -> set[str]:
    async def inspect_tables() -> set[str]:
        engine = create_async_engine(async_url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        finally:
            await engine.dispose()
        return names - {"alembic_version"}

    return asyncio.run(inspect_tables())


def test_an_empty_database_migrates_to_head_back_to_base_and_to_head_again(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url)
    assert tables_in(url) == TABLES
    downgrade(url, "base")
    assert tables_in(url) == set()
    upgrade(url)
    assert tables_in(url) == TABLES


Rows = list[tuple[object, ...]]


def run_sql(async_url: str, statement: str, parameters: dict[str, object]) -> Rows:
    async def run() -> Rows:
        engine = create_async_engine(async_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), parameters)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_accounts_from_before_the_security_version_start_at_version_one(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0001")
    user_id = uuid.uuid4()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    run_sql(
        url,
        "INSERT INTO users (id, email, password_hash, role, is_verified, is_active, created_at,"
        " updated_at) VALUES (:id, 'old@example.com', 'hash', 'user', true, true, :now, :now)",
        {"id": user_id if "postgresql" in url else user_id.hex, "now": now},
    )

    upgrade(url)

    [(version,)] = run_sql(url, "SELECT security_version FROM users", {})
    assert version == 1
    downgrade(url, "0001")
    assert run_sql(url, "SELECT email FROM users", {}) == [("old@example.com",)]
