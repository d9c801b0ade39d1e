from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.bootstrap import Services
from tests.support import (
    REDIS_URL,
    SmtpServer,
    copied_postgres_database,
    delete_redis_keys,
    make_settings,
    migrated_postgres_database,
    migrated_sqlite_database,
    ping_redis,
    running_app,
)

BACKENDS = ["sqlite", "postgresql"]


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
