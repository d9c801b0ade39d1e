from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from clock import Clock
from fake_bastion import FakeBastion
from real_bastion import RealBastion, psql


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> Iterator[FakeBastion]:
    server = FakeBastion()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def bastion(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealBastion]:
    """``bastion serve`` on each database, shared by the tests that use it."""
    workdir = tmp_path_factory.mktemp(f"bastion-{request.param}")
    database = f"verifier_test_{secrets.token_hex(6)}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bastion.db'}"
    else:
        psql(f"CREATE DATABASE {database}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    server = RealBastion(url, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if request.param == "postgresql":
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.fixture(scope="session")
def bastion_user(bastion: RealBastion) -> str:
    """The address of a verified user of ``bastion``; each log-in is a new session."""
    return bastion.new_user()
