from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import settings

from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bastion.logging import configure_logging
from tests.support import (
    REDIS_URL,
    SmtpServer,
    SpareRedis,
    copied_postgres_database,
    delete_redis_keys,
    free_port,
    make_settings,
    migrated_postgres_database,
    migrated_sqlite_database,
    ping_redis,
    running_app,
)

BACKENDS = ["sqlite", "postgresql"]

# Property tests share two cores with the rest of the suite: no per-example deadline, which a busy
# machine would trip, and a bounded number of examples so the suite stays quick.
settings.register_profile("bastion", deadline=None, max_examples=100)
settings.load_profile("bastion")


class _CurrentStandardError:
    """``sys.stderr`` as it is when a line is written: pytest swaps it for each test's capture."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture(scope="session", autouse=True)
def production_logging() -> None:
    """Log as a production worker does (JSON, tracebacks without local values), configured
    before any logger is first used: loggers keep the configuration they first met."""
    configure_logging(json=True)
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(_CurrentStandardError()))


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run; dropped at the end."""
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite_database(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def postgresql_template() -> Iterator[str]:
    """The name of a migrated PostgreSQL database that fresh ones are copied from."""
    with migrated_postgres_database() as url:
        yield url.rsplit("/", 1)[1]


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own, for tests of what is in the whole database (the
    signing keys, everything a purge deletes)."""
    if request.param == "sqlite":
        yield migrated_sqlite_database(tmp_path)
        return
    with copied_postgres_database(request.getfixturevalue("postgresql_template")) as url:
        yield url


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def app(
    database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with running_app(make_settings(database_url, smtp.url)) as running:
        yield running


@pytest.fixture
def client(app: tuple[httpx.AsyncClient, Services]) -> httpx.AsyncClient:
    return app[0]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis; tests that need it fail (never skip) when it does not answer."""
    ping_redis(REDIS_URL)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test run's own, so runs never share limits; deleted at the end."""
    prefix = f"bastion-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        delete_redis_keys(redis_url, prefix)


@pytest.fixture(params=["memory", "redis"])
def limiter_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for each limiter backend; on Redis a key prefix of the test's own, so counts
    never leak from one test into the next."""
    if request.param == "memory":
        return {"redis_url": None}
    prefix: str = request.getfixturevalue("redis_key_prefix")
    return {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_key_prefix": f"{prefix}{secrets.token_hex(4)}:",
    }


@pytest.fixture
def spare_redis() -> Iterator[SpareRedis]:
    server = SpareRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def clocked_app(
    database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, FrozenClock]]:
    """The app on a clock that moves only when the test says."""
    clock = FrozenClock()
    async with running_app(make_settings(database_url, smtp.url), clock=clock) as (
        client,
        services,
    ):
        yield client, services, clock
