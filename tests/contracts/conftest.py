"""Every contract test runs over each implementation of the storage ports: SQLite, PostgreSQL
and the in-memory fakes. Each test starts from empty tables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.adapters.sql import tables
from bastion.adapters.sql.database import create_engine
from bastion.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from bastion.core.secrets import Sealer, derive_key
from bastion.storage import UnitOfWorkFactory
from tests.fakes import FakeUnitOfWorkFactory
from tests.support import migrated_postgres_database, migrated_sqlite_database

STORAGES = ["sqlite", "postgresql", "memory"]
SEALER = Sealer(derive_key("contract-tests-secret-key-0123456789abcdef", "tests/storage"))


@pytest.fixture(scope="session")
def contract_postgresql_url() -> Iterator[str]:
    """A PostgreSQL database of the contract suites' own: they empty its tables."""
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def contract_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite_database(tmp_path_factory.mktemp("contracts"))


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    """The database URL of the storage under test, or "memory" for the fakes."""
    if request.param == "memory":
        return "memory"
    url: str = request.getfixturevalue(f"contract_{request.param}_url")
    return url


@pytest.fixture
async def uow(storage: str) -> AsyncIterator[UnitOfWorkFactory]:
    if storage == "memory":
        yield FakeUnitOfWorkFactory()
        return
    engine = create_engine(storage)
    try:
        await empty_tables(engine)
        yield SqlUnitOfWorkFactory(engine, SEALER)
    finally:
        await engine.dispose()


async def empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(tables.metadata.sorted_tables):
            await connection.execute(delete(table))
