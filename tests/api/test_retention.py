"""The retention purge on SQLite and PostgreSQL: what a user left behind goes one second after
its retention and not before, one instance purges at a time, and a running app purges by itself.

Each test has a database of its own (a purge deletes every old row of the database).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from bastion.adapters.sql import tables
from bastion.background.errors import LeaseHeld
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bastion.retention.model import Purgeable
from tests.support import (
    SmtpServer,
    app_with_user,
    bearer,
    login,
    make_settings,
    refresh,
    remembered_login,
    running_app,
    user_id_of,
    verified_user,
)

DAY = 86400
EVENTS = "/api/v1/auth/me/security-events"


async def sessions_of(services: Services, user_id: Any) -> set[uuid.UUID]:
    s = tables.sessions.c
    async with services.engine.connect() as connection:
        rows = await connection.execute(select(s.id).where(s.user_id == user_id))
        return set(rows.scalars())


async def refresh_tokens_of(services: Services, session_id: uuid.UUID) -> int:
    r = tables.refresh_tokens.c
    async with services.engine.connect() as connection:
        query = select(func.count()).where(r.session_id == session_id)
        return int((await connection.execute(query)).scalar_one())


async def event_types(client: httpx.AsyncClient, email: str) -> list[str]:
    """The user's own security events, as they read them after signing in."""
    access = (await login(client, email)).json()["access_token"]
    response = await client.get(EVENTS, headers=bearer(access))
    assert response.status_code == 200, response.text
    return [item["type"] for item in response.json()["items"]]


async def logged_out_session(client: httpx.AsyncClient, email: str) -> None:
    access = (await login(client, email)).json()["access_token"]
    assert (await client.post("/api/v1/auth/logout", headers=bearer(access))).status_code == 204


async def test_ended_sessions_and_old_events_go_one_second_after_their_retention(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(fresh_database_url, smtp, "retention", clock=clock) as (
        client,
        services,
        email,
    ):
        user_id = await user_id_of(services, email)
        _, refresh_token = await remembered_login(client, email)  # expires in 30 days
        await logged_out_session(client, email)  # revoked now
        remembered = await sessions_of(services, user_id)
        assert len(remembered) == 2

        clock.advance(30 * DAY)
        report = await services.retention.purge()
        assert await sessions_of(services, user_id) == remembered
        # The verification link (used, expired a day in) and its email (sent) went already.
        assert report.deleted[Purgeable.VERIFICATION_TOKENS] == 1
        assert report.deleted[Purgeable.SENT_EMAILS] == 1
        clock.advance(1)
        report = await services.retention.purge()
        assert report.deleted[Purgeable.REVOKED_SESSIONS] == 1
        [remembered_id] = await sessions_of(services, user_id)

        # The remembered session expired 30 days after it began: it goes 30 days later.
        clock.advance(30 * DAY - 1)
        await services.retention.purge()
        assert await refresh_tokens_of(services, remembered_id) == 1
        clock.advance(1)
        report = await services.retention.purge()
        assert report.deleted[Purgeable.EXPIRED_SESSIONS] == 1
        assert await sessions_of(services, user_id) == set()
        assert await refresh_tokens_of(services, remembered_id) == 0
        assert (await refresh(client, refresh_token)).status_code == 401

        # Events are kept 90 days: what happened on the first day is still in the trail...
        clock.advance(30 * DAY - 1)
        await services.retention.purge()
        assert (await event_types(client, email))[-2:] == ["email_verified", "registered"]
        # ... and one second later it is gone; the sign-in just made stays.
        clock.advance(1)
        report = await services.retention.purge()
        # Registered, verified, two sign-ins and a logout.
        assert report.deleted[Purgeable.AUDIT_EVENTS] == 5
        assert await event_types(client, email) == ["login_succeeded", "login_succeeded"]


async def test_while_one_instance_purges_another_leaves_the_rows_alone(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock, settings = FrozenClock(), make_settings(fresh_database_url, smtp.url)
    async with (
        running_app(settings, clock=clock) as (client, first),
        running_app(settings, clock=clock) as (_, second),
    ):
        email = await verified_user(client, smtp.mailbox, "two-instances")
        await logged_out_session(client, email)
        user_id = await user_id_of(first, email)
        clock.advance(31 * DAY)
        started, proceed = asyncio.Event(), asyncio.Event()

        async def purge_when_told() -> Any:
            started.set()
            await proceed.wait()
            return await first.retention.purge()

        purging = asyncio.create_task(first.purge_lease.run(purge_when_told))
        await started.wait()
        try:
            await second.purge_lease.run(second.retention.purge)
            raise AssertionError("the second instance purged while the first held the lease")
        except LeaseHeld:
            pass
        assert len(await sessions_of(second, user_id)) == 1
        proceed.set()
        assert (await purging).deleted[Purgeable.REVOKED_SESSIONS] == 1
        assert (await second.purge_lease.run(second.retention.purge)).total == 0


async def test_a_running_app_purges_on_its_own_each_interval(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(
        fresh_database_url, smtp, "background", clock=clock, maintenance_interval_seconds=0.05
    ) as (client, services, email):
        await logged_out_session(client, email)
        user_id = await user_id_of(services, email)
        clock.advance(31 * DAY)
        async with asyncio.timeout(10):
            while await sessions_of(services, user_id):
                await asyncio.sleep(0.05)
