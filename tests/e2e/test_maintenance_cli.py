"""`bastion keys rotate --if-older-than` and `bastion purge`, as an operator (or cron) runs them,
on SQLite and PostgreSQL; several processes at once rotate an old key once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bastion.adapters.sql import tables
from bastion.bootstrap import build
from bastion.core.clock import FrozenClock
from bastion.core.context import RequestContext
from bastion.settings import Settings
from tests.support import STRONG_PASSWORD, make_settings, migrated_sqlite_database, random_email

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings over a SQLite database of the test's own."""
    return make_settings(migrated_sqlite_database(tmp_path), "smtp://127.0.0.1:9")


def environment_of(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATABASE_URL=settings.database_url,
        BASTION_SECRET_KEY=str(settings.secret_key),
        BASTION_AUTO_MIGRATE="false",
    )
    return env


def bastion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASTION, *args], env=env, capture_output=True, text=True, timeout=60)


def in_the_past(settings: Settings, days: int) -> None:
    """A signing key made and a sign-up begun ``days`` ago, as a long-running deployment has."""

    async def create() -> None:
        clock = FrozenClock(datetime.now(UTC) - timedelta(days=days))
        services = build(settings, clock=clock)
        try:
            await services.tokens.ensure_key()
            await services.accounts.register(random_email("old"), STRONG_PASSWORD, RequestContext())
        finally:
            services.hasher.close()
            await services.engine.dispose()

    asyncio.run(create())


def signing_keys(settings: Settings) -> int:
    async def count() -> int:
        services = build(settings)
        try:
            async with services.engine.connect() as connection:
                query = select(func.count()).select_from(tables.signing_keys)
                return int((await connection.execute(query)).scalar_one())
        finally:
            services.hasher.close()
            await services.engine.dispose()

    return asyncio.run(count())


def test_rotate_if_older_than_rotates_only_an_older_key_and_says_what_it_did(
    settings: Settings,
) -> None:
    environment = environment_of(settings)
    in_the_past(settings, days=3)
    kept = bastion(environment, "keys", "rotate", "--if-older-than", "4")
    assert kept.returncode == 0, kept.stderr
    assert "is 3 days old, not older than 4 days: not rotated." in kept.stdout
    rotated = bastion(environment, "keys", "rotate", "--if-older-than", "2")
    assert rotated.returncode == 0, rotated.stderr
    assert "which was 3 days old" in rotated.stdout and "New signing key" in rotated.stdout
    again = bastion(environment, "keys", "rotate", "--if-older-than", "1")
    assert "is 0 days old, not older than 1 day: not rotated." in again.stdout
    assert signing_keys(settings) == 2


def test_processes_rotating_an_old_key_at_once_rotate_it_once(fresh_database_url: str) -> None:
    settings = make_settings(fresh_database_url, "smtp://127.0.0.1:9")
    in_the_past(settings, days=3)
    command = [BASTION, "keys", "rotate", "--if-older-than", "1"]
    processes = [
        subprocess.Popen(command, env=environment_of(settings), stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 3
    assert sum("New signing key" in output for output in outputs) == 1
    assert signing_keys(settings) == 2


def test_purge_deletes_what_retention_no_longer_keeps_and_says_how_much(
    settings: Settings,
) -> None:
    in_the_past(settings, days=91)
    result = bastion(environment_of(settings), "purge")
    assert result.returncode == 0, result.stderr
    # The sign-up's audit and stream events and its expired link go; its email, never
    # delivered, stays.
    assert result.stdout.startswith("Purged 3 rows: audit_events=1 ")
    assert " verification_tokens=1 " in result.stdout and " sent_emails=0 " in result.stdout
    assert " stream_events=1" in result.stdout
    assert bastion(environment_of(settings), "purge").stdout == "Nothing to purge.\n"
