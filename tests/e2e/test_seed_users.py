"""`bastion seed-users`: many verified users at once, for load tests and drills."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bastion.adapters.sql import tables
from tests.support import STRONG_PASSWORD, login, make_settings, running_app

BASTION = str(Path(sys.executable).with_name("bastion"))


def seed(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATABASE_URL=database_url,
        BASTION_SECRET_KEY_FILE=str(tmp_path / "secret"),
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
    )
    return subprocess.run(
        [BASTION, "seed-users", "--password-stdin", *args],
        env=env,
        input=f"{STRONG_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def address_format() -> str:
    return f"seed-{uuid.uuid4().hex[:8]}-{{n}}@example.com"


async def test_seeded_users_are_verified_and_log_in_with_the_shared_password(
    database_url: str, tmp_path: Path
) -> None:
    emails = address_format()

    result = seed(database_url, tmp_path, "--count", "40", "--email-format", emails)

    assert result.returncode == 0, result.stderr
    assert "Seeded 40 verified users" in result.stdout
    settings = make_settings(database_url, "smtp://127.0.0.1:25")
    async with running_app(settings) as (client, services):
        for n in (0, 39):
            response = await login(client, emails.replace("{n}", str(n)))
            assert response.status_code == 200, response.text
        assert (await login(client, emails.replace("{n}", "40"))).status_code == 401
        pattern = emails.replace("{n}", "%")
        u, a = tables.users.c, tables.audit_events.c
        async with services.engine.connect() as connection:
            seeded = (
                await connection.execute(
                    select(func.count()).where(u.email.like(pattern), u.is_verified, u.is_active)
                )
            ).scalar_one()
            events = (
                await connection.execute(
                    select(a.details)
                    .join(tables.users, u.id == a.user_id)
                    .where(u.email.like(pattern), a.type == "registered")
                )
            ).all()
    assert seeded == 40
    assert len(events) == 40
    assert all(row.details == {"seeded": True} for row in events)


async def test_seeding_over_a_taken_address_seeds_nobody(database_url: str, tmp_path: Path) -> None:
    emails = address_format()
    assert seed(database_url, tmp_path, "--count", "3", "--email-format", emails).returncode == 0

    result = seed(database_url, tmp_path, "--count", "10", "--email-format", emails)

    assert result.returncode == 1
    assert "taken" in result.stderr
    settings = make_settings(database_url, "smtp://127.0.0.1:25")
    async with running_app(settings) as (_, services):
        async with services.engine.connect() as connection:
            query = select(func.count()).where(
                tables.users.c.email.like(emails.replace("{n}", "%"))
            )
            assert (await connection.execute(query)).scalar_one() == 3


def seed_with_format(tmp_path: Path, email_format: str) -> subprocess.CompletedProcess[str]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'seed.db'}"
    return seed(database_url, tmp_path, "--count", "2", "--email-format", email_format)


def test_the_address_format_must_number_the_users(tmp_path: Path) -> None:
    refused = seed_with_format(tmp_path, "same@example.com")
    assert refused.returncode == 2
    assert "{n}" in refused.stderr


def test_an_address_format_that_is_not_canonical_is_refused(tmp_path: Path) -> None:
    refused = seed_with_format(tmp_path, "Seed-{n}@Example.com")
    assert refused.returncode == 2
    assert "'seed-0@example.com'" in refused.stderr
