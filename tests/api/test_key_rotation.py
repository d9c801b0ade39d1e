"""Automatic signing-key rotation on SQLite and PostgreSQL: an old signer is replaced, the
tokens it signed stay valid until they expire, and instances sharing a database rotate once.

Each test has a database of its own: the signer is the newest key of the whole database.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from bastion.adapters.sql import tables
from bastion.background.periodic import PeriodicTask
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bastion.tokens.service import ROTATION_LEASE
from tests.support import (
    SmtpServer,
    app_with_user,
    assert_problem,
    audit_rows,
    kid_of,
    login,
    make_settings,
    running_app,
    verify_token,
)

DAY = 86400


def rotation_task(services: Services) -> PeriodicTask:
    return next(task for task in services.background if task.name == ROTATION_LEASE)


async def published_kids(client: httpx.AsyncClient) -> set[str]:
    return {key["kid"] for key in (await client.get("/.well-known/jwks.json")).json()["keys"]}


async def signing_keys(services: Services) -> int:
    async with services.engine.connect() as connection:
        query = select(func.count()).select_from(tables.signing_keys)
        return int((await connection.execute(query)).scalar_one())


async def test_a_signer_older_than_the_limit_is_replaced_and_its_tokens_live_out_their_time(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(fresh_database_url, smtp, "rotation", clock=clock) as (
        client,
        services,
        email,
    ):
        clock.advance(90 * DAY)
        old_token = (await login(client, email)).json()["access_token"]
        assert await rotation_task(services).run_once()
        assert await published_kids(client) == {kid_of(old_token)}  # exactly 90 days: kept

        clock.advance(1)
        assert await rotation_task(services).run_once()
        new_token = (await login(client, email)).json()["access_token"]
        assert kid_of(new_token) != kid_of(old_token)
        assert await published_kids(client) == {kid_of(old_token), kid_of(new_token)}
        [rotated] = await audit_rows(services, "signing_key_rotated")
        assert rotated["details"]["replaced_kid"] == kid_of(old_token)

        # The old token lives out its day (ACCESS_TOKEN_TTL), then its key leaves the JWKS.
        clock.advance(DAY - 2)
        assert (await verify_token(client, old_token)).status_code == 200
        clock.advance(1)
        assert_problem(await verify_token(client, old_token), 401, "TOKEN_EXPIRED")
        assert await published_kids(client) == {kid_of(old_token), kid_of(new_token)}
        clock.advance(1)
        assert await published_kids(client) == {kid_of(new_token)}
        later_token = (await login(client, email)).json()["access_token"]
        assert kid_of(later_token) == kid_of(new_token)
        assert (await verify_token(client, later_token)).status_code == 200


async def test_instances_sharing_a_database_rotate_an_old_signer_once(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock, settings = FrozenClock(), make_settings(fresh_database_url, smtp.url)
    async with (
        running_app(settings, clock=clock) as (_, first),
        running_app(settings, clock=clock) as (_, second),
        running_app(settings, clock=clock) as (_, third),
    ):
        instances = [first, second, third]
        assert await signing_keys(first) == 1
        clock.advance(91 * DAY)
        for _ in range(3):
            await asyncio.gather(*(rotation_task(s).run_once() for s in instances))
        assert await signing_keys(first) == 2
        assert len(await audit_rows(first, "signing_key_rotated")) == 1


async def test_a_running_app_rotates_an_old_signer_on_its_own_unless_turned_off(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    settings = make_settings(fresh_database_url, smtp.url, maintenance_interval_seconds=0.05)
    async with running_app(settings, clock=clock) as (_, services):
        clock.advance(91 * DAY)
        async with asyncio.timeout(10):
            while await signing_keys(services) == 1:
                await asyncio.sleep(0.05)
    off = make_settings(
        fresh_database_url,
        smtp.url,
        maintenance_interval_seconds=0.01,
        signing_key_rotation_days=0,
    )
    async with running_app(off, clock=clock) as (_, services):
        clock.advance(3650 * DAY)
        await asyncio.sleep(0.3)
        assert await signing_keys(services) == 2
