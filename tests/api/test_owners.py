"""An owner's control of their account over HTTP: change of email, export and deletion."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from bastion.accounts.model import Role
from bastion.adapters.sql import tables
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.support import (
    PUBLIC_URL,
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    login,
    make_settings,
    random_email,
    register,
    running_app,
    text_of,
    token_in,
    verified_user,
    verify_token,
)

ME = "/api/v1/auth/me"


@pytest.fixture
async def clocked(
    database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, FrozenClock]]:
    clock = FrozenClock()
    async with running_app(make_settings(database_url, smtp.url), clock=clock) as (c, s):
        yield c, s, clock


async def signed_in(client: httpx.AsyncClient, smtp: SmtpServer) -> tuple[str, str]:
    email = await verified_user(client, smtp.mailbox, "owner")
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return email, response.json()["access_token"]


async def ask_change(client: httpx.AsyncClient, access: str, new_email: str) -> httpx.Response:
    return await client.post(f"{ME}/email", json={"new_email": new_email}, headers=bearer(access))


async def confirm(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{ME}/email/confirm/{token}")


async def test_a_confirmed_change_of_email_moves_the_account_and_signs_every_session_out(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    old, access = await signed_in(client, smtp)
    other_access = (await login(client, old)).json()["access_token"]
    new = random_email("moved")
    response = await ask_change(client, access, new)
    assert response.status_code == 202, response.text
    notice = await smtp.mailbox.wait_for(old, "change of your email")
    assert "token=" not in text_of(notice)
    link = await smtp.mailbox.wait_for(new, "confirm your new email")
    assert f"{PUBLIC_URL}/confirm-email?token=" in text_of(link)
    token = token_in(link, "/confirm-email")
    assert len(token) >= 43

    confirmed = await confirm(client, token)
    assert confirmed.status_code == 200, confirmed.text
    replaced = await smtp.mailbox.wait_for(old, "email address was changed")
    assert "http" not in text_of(replaced)
    for stale in (access, other_access):
        assert_problem(await verify_token(client, stale), 401, "SESSION_REVOKED")
    assert (await login(client, old)).status_code == 401
    fresh = await login(client, new)
    assert fresh.status_code == 200, fresh.text
    me = (await client.get(ME, headers=bearer(fresh.json()["access_token"]))).json()
    assert me["email"] == new and me["is_verified"] is True
    assert_problem(await confirm(client, token), 400, "TOKEN_INVALID")


async def test_a_taken_new_address_gets_the_same_answer_and_its_owner_is_told(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    taken = await verified_user(client, smtp.mailbox, "taken")
    old, access = await signed_in(client, smtp)
    free = await ask_change(client, access, random_email("free"))
    response = await ask_change(client, access, taken.upper())
    assert response.status_code == 202 and response.json() == free.json()
    await smtp.mailbox.wait_for(taken, "someone tried to use your email")
    assert not [m for m in smtp.mailbox.received(taken) if "confirm your new" in m["Subject"]]
    # One notice to the old address for each request, the free address's and the taken one's.
    assert len(await smtp.mailbox.wait_for_all(old, "change of", 2)) == 2


async def test_an_address_taken_before_the_confirmation_is_refused(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    old, access = await signed_in(client, smtp)
    new = random_email("contested")
    assert (await ask_change(client, access, new)).status_code == 202
    token = token_in(await smtp.mailbox.wait_for(new, "confirm your new"), "/confirm-email")
    assert (await register(client, new, STRONG_PASSWORD)).status_code == 202
    assert_problem(await confirm(client, token), 409, "EMAIL_TAKEN")
    assert (await login(client, old)).status_code == 200


async def test_bad_requests_and_links_get_their_codes(
    clocked: tuple[httpx.AsyncClient, Services, FrozenClock], smtp: SmtpServer
) -> None:
    client, _, clock = clocked
    _, access = await signed_in(client, smtp)
    for body in ({"new_email": "not-an-address"}, {}, {"new_email": "a@b.example", "x": 1}):
        response = await client.post(f"{ME}/email", json=body, headers=bearer(access))
        assert_problem(response, 422, "VALIDATION_ERROR")
    assert_problem(await confirm(client, "x" * 43), 400, "TOKEN_INVALID")
    assert_problem(await confirm(client, "x" * 500), 422, "VALIDATION_ERROR")
    new = random_email("late")
    assert (await ask_change(client, access, new)).status_code == 202
    token = token_in(await smtp.mailbox.wait_for(new, "confirm your new"), "/confirm-email")
    clock.advance(3601)
    assert_problem(await confirm(client, token), 410, "TOKEN_EXPIRED")


async def test_critical_changes_need_a_recent_authentication(
    clocked: tuple[httpx.AsyncClient, Services, FrozenClock], smtp: SmtpServer
) -> None:
    client, _, clock = clocked
    _, access = await signed_in(client, smtp)
    clock.advance(901)
    assert_problem(
        await ask_change(client, access, random_email()), 403, "REAUTHENTICATION_REQUIRED"
    )
    response = await client.get(f"{ME}/export", headers=bearer(access))
    assert_problem(response, 403, "REAUTHENTICATION_REQUIRED")
    assert_problem(
        await client.delete(ME, headers=bearer(access)), 403, "REAUTHENTICATION_REQUIRED"
    )
    assert (await client.get(ME, headers=bearer(access))).status_code == 200


async def test_email_change_requests_are_rate_limited_per_user(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, user_rate_limit_per_minute=2)
    async with running_app(settings) as (client, _):
        _, access = await signed_in(client, smtp)
        codes = [(await ask_change(client, access, random_email())).status_code for _ in range(3)]
        assert codes == [202, 202, 429]


async def test_an_email_change_and_a_sign_up_racing_for_an_address_leave_it_to_one_account(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, register_per_hour=100)
    async with running_app(settings) as (client, services):
        for _ in range(4):
            old, access = await signed_in(client, smtp)
            new = random_email("raced")
            assert (await ask_change(client, access, new)).status_code == 202
            message = await smtp.mailbox.wait_for(new, "confirm your new")
            token = token_in(message, "/confirm-email")
            confirmed, registered = await asyncio.gather(
                confirm(client, token), register(client, new, STRONG_PASSWORD)
            )
            assert registered.status_code == 202, registered.text
            assert confirmed.status_code in (200, 409), confirmed.text
            users = tables.users.c
            async with services.engine.connect() as connection:
                query = select(users.email).where(users.email.in_([old, new]))
                emails = sorted((await connection.execute(query)).scalars().all())
            # One account has the address; if the sign-up won, the owner kept the old one.
            expected = [new] if confirmed.status_code == 200 else sorted([old, new])
            assert emails == expected


async def test_the_export_is_an_attachment_with_every_kept_record_and_no_secret(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    email, access = await signed_in(client, smtp)
    ended = (await login(client, email)).json()["access_token"]
    assert (await client.post("/api/v1/auth/logout", headers=bearer(ended))).status_code == 204
    response = await client.get(f"{ME}/export", headers=bearer(access))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert re.match(r'attachment; filename="[^"]+\.json"', response.headers["content-disposition"])
    body = response.json()
    assert set(body) == {"exported_at", "user", "sessions", "security_events", "factors"}
    assert body["user"]["email"] == email
    assert len(body["sessions"]) == 2 and all("id" in s for s in body["sessions"])
    assert any(s["revoked_at"] for s in body["sessions"])
    types = {item["type"] for item in body["security_events"]}
    assert {"registered", "login_succeeded", "logout"} <= types
    assert body["factors"] == []
    assert "argon2" not in response.text and "password_hash" not in response.text
    assert access not in response.text


async def test_exports_are_limited_to_five_an_hour(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    _, access = await signed_in(client, smtp)
    codes = [
        (await client.get(f"{ME}/export", headers=bearer(access))).status_code for _ in range(6)
    ]
    assert codes == [200] * 5 + [429]
    limited = await client.get(f"{ME}/export", headers=bearer(access))
    assert_problem(limited, 429, "RATE_LIMITED")


async def test_a_deleted_account_is_erased_its_tokens_stop_and_its_last_email_is_not_kept(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email, access = await signed_in(client, smtp)
    other = (await login(client, email)).json()["access_token"]
    response = await client.delete(ME, headers=bearer(access))
    assert response.status_code == 204, response.text
    for token in (access, other):
        assert_problem(await verify_token(client, token), 401, "SESSION_REVOKED")
    goodbye = await smtp.mailbox.wait_for(email, "your account was deleted")
    assert "token=" not in text_of(goodbye)
    assert (await login(client, email)).status_code == 401
    await asyncio.sleep(0.3)
    async with services.engine.connect() as connection:
        kept = (
            await connection.execute(
                select(tables.outbox.c.id).where(tables.outbox.c.recipient == email)
            )
        ).all()
        users = (
            await connection.execute(select(tables.users.c.id).where(tables.users.c.email == email))
        ).all()
    assert kept == [] and users == []


async def test_the_last_admin_cannot_delete_their_own_account(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(fresh_database_url, smtp.url)) as (client, services):
        email = random_email("sole-admin")
        await services.accounts.create_user(email, STRONG_PASSWORD, Role.ADMIN)
        access = (await login(client, email)).json()["access_token"]
        assert_problem(await client.delete(ME, headers=bearer(access)), 409, "LAST_ADMIN")
        assert (await client.get(ME, headers=bearer(access))).status_code == 200
