"""The throwaway PostgreSQL databases and Redis keys a run owns, created fresh and removed after."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.config import POSTGRES_ADMIN_URL, REDIS_URL

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://postgres@127.0.0.1:5432/{name}"


def recreate_database(name: str) -> None:
    """Drop `name` if a crashed run left it behind, then create it empty."""
    asyncio.run(
        _admin(
            f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
        )
    )


def execute(name: str, *statements: str) -> None:
    """Run statements in the database `name`, each in its own transaction."""
    asyncio.run(_in_database(name, statements))


async def _in_database(name: str, statements: Sequence[str]) -> None:
    await _autocommit(database_url(_checked(name)), statements)


def drop_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)'))


def _checked(name: str) -> str:
    # Database names cannot be bound as parameters, so only plain identifiers get interpolated.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


async def _admin(*statements: str) -> None:
    # CREATE/DROP DATABASE refuse to run inside a transaction.
    await _autocommit(POSTGRES_ADMIN_URL, statements)


async def _autocommit(url: str, statements: Sequence[str]) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", connect_args={"timeout": 10})
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def delete_redis_keys(prefix: str) -> int:
    """Remove every key under the run's prefix; other users of the Redis database are untouched."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()
