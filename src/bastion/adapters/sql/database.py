"""Engine construction: SQLite tuned for concurrent writers, PostgreSQL pooled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

READ_ONLY = "bastion_read_only"
SQLITE_BUSY_TIMEOUT_SECONDS = 15


# Connections kept open per process. Under load every in-flight request holds one during its
# queries; connections beyond the pool are opened and closed per use, which costs far more than
# the query (seen in the benchmark at 64 concurrent requests per worker with a pool of 10).
DEFAULT_POOL_SIZE = 20


def create_engine(database_url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """The engine for ``database_url``. On both databases its errors never carry the statement's
    bound values (password hashes, token hashes, addresses): a crash logs the error's message."""
    if database_url.startswith("sqlite"):
        return _sqlite_engine(database_url)
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it would cost a round trip per transaction. After an outage, the first
        # request on a dead connection fails (503) and SQLAlchemy then recycles the whole pool.
        pool_pre_ping=False,
        pool_timeout=5,
        pool_recycle=1800,
        connect_args={"timeout": 5, "command_timeout": 15},
        hide_parameters=True,
    )


def _sqlite_engine(database_url: str) -> AsyncEngine:
    engine = create_async_engine(
        database_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let us issue BEGIN ourselves (below) instead of the driver's implicit deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails with "database is locked" when
        # another writer got there first; taking the write lock up front makes it wait instead.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
