"""Events are written in the transaction of each change they tell of, with the fields the
contract names; GET /api/v1/events refuses what it must (the stream itself is read from a real
server in tests/e2e/test_event_stream.py: httpx's in-process transport cannot stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bastion.credentials.model import Scope
from bastion.events.model import StreamEvent
from bastion.retention.model import Purgeable
from tests.api.test_admin import make_user, patch_user
from tests.api.test_password_reset import NEW_PASSWORD, requested_reset, reset
from tests.mfa_support import CONTEXT, MfaWorld, mfa_world
from tests.support import (
    SmtpServer,
    app_with_user,
    assert_problem,
    bearer,
    login,
    make_settings,
    random_email,
    register_verified,
    running_app,
    user_id_of,
)

EVENTS = "/api/v1/events"


async def newest(services: Services) -> int:
    async with services.uow(read_only=True) as uow:
        return await uow.events.newest_id()


async def events_since(services: Services, cursor: int) -> list[StreamEvent]:
    async with services.uow(read_only=True) as uow:
        return await uow.events.after(cursor, 1000)


def summary(events: list[StreamEvent]) -> list[tuple[str, str | None]]:
    """(type, sid) of each event, sorted: the events of one commit come in any order."""
    return sorted((e.type.value, e.fields.get("sid")) for e in events)


async def test_sign_up_and_verification_are_told(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    start = await newest(services)
    email = random_email("told")
    await register_verified(client, smtp.mailbox, email)
    user_id = str(await user_id_of(services, email))
    events = await events_since(services, start)
    assert [(e.type.value, e.fields) for e in events] == [
        ("user.registered", {"user_id": user_id}),
        ("user.verified", {"user_id": user_id}),
    ]


async def test_admin_changes_tell_the_change_and_each_ended_session(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    await login(client, target.email, "Correct-Horse-7")
    listed = (await client.get("/api/v1/auth/sessions", headers=target.headers)).json()
    sids = sorted(session["id"] for session in listed)
    start = await newest(services)
    assert (await patch_user(client, admin, target.id, {"role": "manager"})).status_code == 200
    changed = await events_since(services, start)
    revoked = [e for e in changed if e.type.value == "session.revoked"]
    assert {e.type.value for e in changed} == {"user.role_changed", "session.revoked"}
    assert sorted(e.fields["sid"] for e in revoked) == sids and len(sids) == 2
    assert all(e.fields["user_id"] == target.id for e in changed)

    start = await newest(services)
    assert (await patch_user(client, admin, target.id, {"is_active": False})).status_code == 200
    assert summary(await events_since(services, start)) == [("user.disabled", None)]

    start = await newest(services)
    deleted = await client.delete(f"/api/v1/admin/users/{target.id}", headers=admin.headers)
    assert deleted.status_code == 204
    assert [(e.type.value, e.fields) for e in await events_since(services, start)] == [
        ("user.deleted", {"user_id": target.id})
    ]


async def test_a_reset_tells_the_reset_and_each_ended_session(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = random_email("reset-told")
    await register_verified(client, smtp.mailbox, email)
    sessions = [(await login(client, email)).json()["session_id"] for _ in range(2)]
    token = await requested_reset(client, smtp, email)
    start = await newest(services)
    assert (await reset(client, token)).status_code == 200
    assert summary(await events_since(services, start)) == sorted(
        [("password.reset", None), *(("session.revoked", sid) for sid in sessions)]
    )
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_logout_all_tells_each_session_and_a_failed_change_tells_nothing(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = random_email("all")
    await register_verified(client, smtp.mailbox, email)
    logins = [(await login(client, email)).json() for _ in range(3)]
    start = await newest(services)
    # A wrong current password changes nothing, so nothing is told.
    wrong = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "Wrong-Horse-7", "new_password": NEW_PASSWORD},
        headers=bearer(logins[0]["access_token"]),
    )
    assert wrong.status_code in (400, 401, 403)
    assert await events_since(services, start) == []
    all_out = await client.delete(
        "/api/v1/auth/sessions/all", headers=bearer(logins[0]["access_token"])
    )
    assert all_out.status_code == 204, all_out.text
    assert summary(await events_since(services, start)) == sorted(
        ("session.revoked", login["session_id"]) for login in logins
    )


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[MfaWorld]:
    async with mfa_world(database_url, smtp) as running:
        yield running


async def test_factors_added_and_removed_and_new_recovery_codes_are_told(world: MfaWorld) -> None:
    user = await world.user()
    start = await newest(world.services)
    await world.with_totp(user)
    await world.mfa.regenerate_recovery_codes(user, CONTEXT)
    events = await events_since(world.services, start)
    assert [e.type.value for e in events] == ["mfa.changed", "mfa.changed"]
    assert {e.fields["user_id"] for e in events} == {str(user.id)}


async def test_a_position_older_than_the_retention_is_gone_and_a_bad_one_is_400(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "gone", clock=clock, event_retention=60) as (
        client,
        services,
        email,
    ):
        key = (await services.service_keys.create("gone", [Scope.EVENTS_READ])).secret
        position = await newest(services)
        assert position > 0  # the user's sign-up
        clock.advance(61)
        response = await client.get(EVENTS, headers={**bearer(key), "Last-Event-ID": str(position)})
        assert_problem(response, 410, "EVENT_ID_EXPIRED")
        for bad in ("x", "-3", "1.5"):
            response = await client.get(EVENTS, headers={**bearer(key), "Last-Event-ID": bad})
            assert_problem(response, 400, "INVALID_EVENT_ID")
        assert_problem(await client.get(EVENTS), 401, "INVALID_SERVICE_KEY")
        token = (await login(client, email)).json()["access_token"]
        assert_problem(await client.get(EVENTS, headers=bearer(token)), 401, "INVALID_SERVICE_KEY")


async def test_the_purge_deletes_events_past_the_retention(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(
        fresh_database_url, smtp, "purged", clock=clock, event_retention=3600
    ) as (_, services, _email):
        assert await events_since(services, 0)
        clock.advance(3600 + 1)
        report = await services.retention.purge()
        assert report.deleted[Purgeable.STREAM_EVENTS] == 2
        assert await events_since(services, 0) == []


async def test_an_admins_session_revocation_tells_each_ended_session(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    sid = (await login(client, target.email)).json()["session_id"]
    start = await newest(services)
    one = await client.delete(
        f"/api/v1/admin/users/{target.id}/sessions/{sid}", headers=admin.headers
    )
    assert one.status_code == 204, one.text
    assert summary(await events_since(services, start)) == [("session.revoked", sid)]

    start = await newest(services)
    rest = await client.delete(f"/api/v1/admin/users/{target.id}/sessions", headers=admin.headers)
    assert rest.status_code == 204, rest.text
    told = await events_since(services, start)
    assert [e.type.value for e in told] == ["session.revoked"]
    assert told[0].fields["user_id"] == target.id


async def test_users_an_admin_creates_are_told_registered_and_verified_once_they_are(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    start = await newest(services)
    created = await client.post(
        "/api/v1/admin/users",
        json={"email": random_email("made"), "role": "user", "password": "Correct-Horse-7"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    invited = await client.post(
        "/api/v1/admin/users",
        json={"email": random_email("invited"), "role": "user", "invite": True},
        headers=admin.headers,
    )
    assert invited.status_code == 201, invited.text
    told = [(e.type.value, e.fields["user_id"]) for e in await events_since(services, start)]
    made, asked = created.json()["id"], invited.json()["id"]
    assert sorted(told) == sorted(
        [("user.registered", made), ("user.verified", made), ("user.registered", asked)]
    )


async def test_an_admins_second_factor_reset_tells_the_change_and_each_ended_session(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    target = await make_user(client, services, Role.USER)
    sid = (await login(client, target.email)).json()["session_id"]
    user = await services.admin.find_by_email(target.email)
    start = await newest(services)
    await services.mfa.reset_by_admin(None, user, CONTEXT)
    told = await events_since(services, start)
    assert {e.type.value for e in told} == {"mfa.changed", "session.revoked"}
    assert sid in {e.fields.get("sid") for e in told}


async def test_a_revoked_signing_key_is_told(fresh_database_url: str, smtp: SmtpServer) -> None:
    async with running_app(make_settings(fresh_database_url, smtp.url)) as (_, services):
        kid = (await services.tokens.fresh_statuses())[0].key.kid
        start = await newest(services)
        await services.tokens.revoke(kid)
        told = await events_since(services, start)
    assert [(e.type.value, e.fields) for e in told] == [("signing_key.revoked", {"kid": kid})]
