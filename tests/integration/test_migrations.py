"""Alembic is the only way the schema changes: it must go up, down and up again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.migrate import MigrationStopped, downgrade, upgrade
from tests.support import create_postgres_database, drop_postgres_database

TABLES = {
    "users",
    "email_verification_tokens",
    "password_reset_tokens",
    "invitation_tokens",
    "email_change_tokens",
    "sessions",
    "refresh_tokens",
    "browser_tokens",
    "signing_keys",
    "outbox",
    "audit_events",
    "mfa_factors",
    "webauthn_credentials",
    "recovery_codes",
    "webauthn_challenges",
    "mfa_tokens",
    "leases",
    "service_keys",
    "stream_events",
    "webhooks",
    "webhook_deliveries",
    "webhook_cursor",
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


def add_users(async_url: str, emails: list[str]) -> list[uuid.UUID]:
    """Insert users with these addresses exactly as written (no normalization): their ids."""
    users = sa.table(
        "users",
        *(sa.column(name) for name in ("email", "password_hash", "role")),
        sa.column("id", sa.Uuid()),
        sa.column("is_verified", sa.Boolean()),
        sa.column("is_active", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in emails]
    rows = [
        {"id": user_id, "email": email, "password_hash": "x", "role": "user"}
        | {"is_verified": True, "is_active": True, "created_at": now, "updated_at": now}
        for user_id, email in zip(ids, emails, strict=True)
    ]

    async def insert() -> None:
        engine = create_async_engine(async_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.insert(users), rows)
        finally:
            await engine.dispose()

    asyncio.run(insert())
    return ids


def emails_in(async_url: str) -> dict[uuid.UUID, str]:
    async def select_emails() -> dict[uuid.UUID, str]:
        engine = create_async_engine(async_url)
        try:
            async with engine.connect() as connection:
                users = sa.table("users", sa.column("id", sa.Uuid()), sa.column("email"))
                rows = await connection.execute(sa.select(users.c.id, users.c.email))
                return {user_id: email for user_id, email in rows}
        finally:
            await engine.dispose()

    return asyncio.run(select_emails())


def test_the_email_migration_stores_every_address_in_its_canonical_form(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0001")
    spellings = ["ａlice@example.com", "bob@ＥXAMPLE.com", "ali\u0307ce-2@example.com"]
    ids = add_users(url, [*spellings, "carol@example.com"])
    upgrade(url)
    assert [emails_in(url)[user_id] for user_id in ids] == [
        "alice@example.com",
        "bob@example.com",
        "alice-2@example.com",
        "carol@example.com",
    ]
    downgrade(url, "0001")
    upgrade(url)
    assert emails_in(url)[ids[0]] == "alice@example.com"


def test_the_email_migration_stops_naming_the_accounts_whose_addresses_collide(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0001")
    colliding = ["alice@example.com", "ａlice@example.com", "ALİCE@example.com"]
    ids = add_users(url, [*colliding, "dave@ｅxample.com"])
    with pytest.raises(MigrationStopped) as stopped:
        upgrade(url)
    report = str(stopped.value)
    assert "'alice@example.com' is the address of" in report
    for user_id, email in zip(ids, colliding, strict=False):
        assert f"user {user_id} {email!r}" in report
    assert "dave" not in report
    assert emails_in(url)[ids[3]] == "dave@ｅxample.com", "nothing was changed"
    upgrade(url, "0001")  # refused if the database had moved past 0001


def test_the_email_migration_leaves_an_address_without_canonical_form_as_it_is(
    empty_database: str, capfd: pytest.CaptureFixture[str]
) -> None:
    url = empty_database
    upgrade(url, "0001")
    [odd, usual] = add_users(url, ["admin@localhost", "Erin@Example.com"])
    upgrade(url)
    assert emails_in(url) == {odd: "admin@localhost", usual: "erin@example.com"}
    warning = capfd.readouterr().err
    assert "migration.emails_left_as_they_are" in warning and str(odd) in warning


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


def test_sessions_from_before_assurance_read_as_password_sessions_proven_when_they_started(
    empty_database: str,
) -> None:
    url = empty_database
    upgrade(url, "0009_browser_sessions")
    [user_id] = add_users(url, [f"assured-{uuid.uuid4().hex[:8]}@example.com"])
    session_id = uuid.uuid4()
    started = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    as_stored = (lambda u: u) if "postgresql" in url else (lambda u: u.hex)
    run_sql(
        url,
        "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, remember_me)"
        " VALUES (:id, :user_id, :started, :started, :started, false)",
        {"id": as_stored(session_id), "user_id": as_stored(user_id), "started": started},
    )

    upgrade(url)

    [(aal, amr, auth_time)] = run_sql(url, "SELECT aal, amr, auth_time FROM sessions", {})
    assert (aal, amr) == ("aal1", "pwd")
    assert auth_time is not None
    downgrade(url, "0009_browser_sessions")
    [(count,)] = run_sql(url, "SELECT count(*) FROM sessions", {})
    assert count == 1
    upgrade(url)
