"""Alembic is the only way the schema changes: it must go up, down and up again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
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
    "leases",
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
