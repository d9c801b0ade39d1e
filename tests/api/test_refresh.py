"""Remember me, refresh-token rotation, reuse detection, expiry and CSRF protection."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bastion.adapters.sql import tables
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bastion.core.secrets import hash_token, new_token
from tests.support import (
    PUBLIC_URL,
    SmtpServer,
    app_with_user,
    assert_problem,
    audit_events_of,
    bearer,
    login,
    refresh,
    refresh_cookie_header,
    refresh_token_in,
    remembered_login,
    remembered_user,
    verified_user,
    verify_token,
)

DAY = 86400
HOSTILE_SOURCES = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Referer": "https://evil.example/steal"},
    {"Origin": "https://bastion.test.evil.example"},
]


async def the_only_session(client: httpx.AsyncClient, access: str) -> dict[str, object]:
    listed = await client.get("/api/v1/auth/sessions", headers=bearer(access))
    assert listed.status_code == 200, listed.text
    [session] = listed.json()
    assert isinstance(session, dict)
    return session


def lifetime(session: dict[str, object]) -> timedelta:
    return datetime.fromisoformat(str(session["expires_at"])) - datetime.fromisoformat(
        str(session["created_at"])
    )


async def test_remember_me_sets_a_strict_http_only_cookie_for_thirty_days(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    email = await verified_user(client, smtp.mailbox, "remember")
    response = await login(client, email, remember_me=True)
    assert response.status_code == 200
    token = refresh_token_in(response)
    assert refresh_cookie_header(response) == (
        f"bastion_refresh={token}; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; "
        f"Max-Age={30 * DAY}"
    )
    session = await the_only_session(client, response.json()["access_token"])
    assert session["remember_me"] is True
    assert lifetime(session) == timedelta(days=30)


async def test_the_cookie_is_not_secure_when_cookie_secure_is_false(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(
        database_url, smtp, "insecure", cookie_secure=False, remember_me_ttl=3600
    ) as (client, _, email):
        response = await login(client, email, remember_me=True)
        assert refresh_cookie_header(response) == (
            f"bastion_refresh={refresh_token_in(response)}; HttpOnly; SameSite=Strict; "
            "Path=/api/v1/auth; Max-Age=3600"
        )


async def test_without_remember_me_there_is_no_cookie_and_the_session_lasts_a_day(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    email = await verified_user(client, smtp.mailbox, "forgetful")
    response = await login(client, email)
    assert response.status_code == 200
    assert not any(
        header.startswith("bastion_refresh=") for header in response.headers.get_list("set-cookie")
    )
    session = await the_only_session(client, response.json()["access_token"])
    assert session["remember_me"] is False
    assert lifetime(session) == timedelta(days=1)


async def test_refresh_gives_a_new_access_token_for_the_same_session_and_rotates_the_cookie(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    email, access, token = await remembered_user(client, smtp.mailbox, "rotate")
    session_id = (await the_only_session(client, access))["id"]

    rotated = await refresh(client, token)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "session_id"}
    assert body["token_type"] == "bearer"
    assert body["session_id"] == session_id
    assert 0 < body["expires_in"] <= DAY
    assert body["access_token"] != access
    new_refresh = refresh_token_in(rotated)
    assert new_refresh != token
    verified = await verify_token(client, body["access_token"])
    assert verified.status_code == 200
    assert verified.json()["sid"] == session_id

    again = await refresh(client, new_refresh)
    assert again.status_code == 200
    assert again.json()["session_id"] == session_id


async def test_refresh_tokens_are_stored_only_as_hashes(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = await verified_user(client, smtp.mailbox, "hashed")
    response = await login(client, email, remember_me=True)
    token = refresh_token_in(response)
    async with services.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(tables.refresh_tokens).where(
                    tables.refresh_tokens.c.token_hash == hash_token(token)
                )
            )
        ).all()
    assert len(rows) == 1
    assert all(token not in str(value) for value in rows[0])


async def test_reusing_a_rotated_refresh_token_ends_the_whole_session(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email, first_access, first_refresh = await remembered_user(client, smtp.mailbox, "stolen")
    rotated = await refresh(client, first_refresh)
    assert rotated.status_code == 200
    again = await refresh(client, refresh_token_in(rotated))
    newest_access, newest_refresh = again.json()["access_token"], refresh_token_in(again)

    replayed = await refresh(client, first_refresh)
    assert_problem(replayed, 401, "REFRESH_TOKEN_REUSED")

    newest = await refresh(client, newest_refresh)
    assert_problem(newest, 401, "INVALID_REFRESH_TOKEN")
    for access in (first_access, newest_access):
        checked = await verify_token(client, access)
        assert_problem(checked, 401, "SESSION_REVOKED")

    events = await audit_events_of(services, email, "refresh_reuse_detected")
    assert [e.details["session_id"] for e in events] == [rotated.json()["session_id"]]
    warning = await smtp.mailbox.wait_for(email, "ended for your safety")
    assert "presented twice" in str(warning.get_body(preferencelist=("plain",)))


async def test_twenty_parallel_refreshes_with_one_token_end_the_session_once(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email, access, token = await remembered_user(client, smtp.mailbox, "race")

    responses = await asyncio.gather(*(refresh(client, token) for _ in range(20)))

    # One trades the token; one more may be taken for a client retrying an answer it missed;
    # the rest present a spent token, so the session ends, exactly once.
    winners = [r for r in responses if r.status_code == 200]
    assert 1 <= len(winners) <= 2
    losers = {r.json()["code"] for r in responses if r.status_code == 401}
    assert len(winners) + sum(r.status_code == 401 for r in responses) == 20
    assert losers <= {"REFRESH_TOKEN_REUSED", "INVALID_REFRESH_TOKEN"}
    events = await audit_events_of(services, email, "refresh_reuse_detected")
    assert len(events) == 1
    for issued in [access, *(r.json()["access_token"] for r in winners)]:
        assert_problem(await verify_token(client, issued), 401, "SESSION_REVOKED")
    for winner in winners:
        assert (await refresh(client, refresh_token_in(winner))).status_code == 401
    warnings = await smtp.mailbox.settled(email, "ended for your safety", expected=1)
    assert len(warnings) == 1


async def test_a_missing_or_unknown_refresh_token_is_invalid(
    client: httpx.AsyncClient,
) -> None:
    for token in (None, new_token(), "not-a-token", ""):
        response = await refresh(client, token)
        assert_problem(response, 401, "INVALID_REFRESH_TOKEN")


async def test_refreshing_never_extends_the_session_and_an_expired_token_is_invalid(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(
        database_url, smtp, "fixed", clock=clock, remember_me_ttl=1000, access_token_ttl=300
    ) as (client, _, email):
        _, token = await remembered_login(client, email)
        clock.advance(900)

        rotated = await refresh(client, token)
        assert rotated.status_code == 200
        # 100 s of the session remain, less than the 300 s an access token normally lives.
        assert rotated.json()["expires_in"] == 100
        assert refresh_cookie_header(rotated).endswith("; Max-Age=100")
        access = rotated.json()["access_token"]
        session = await the_only_session(client, access)
        assert lifetime(session) == timedelta(seconds=1000)

        clock.advance(100)
        expired = await refresh(client, refresh_token_in(rotated))
        assert_problem(expired, 401, "INVALID_REFRESH_TOKEN")
        checked = await verify_token(client, access)
        assert checked.status_code == 401


async def test_an_access_token_never_outlives_its_session(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(
        database_url, smtp, "short", clock=clock, session_ttl=600, access_token_ttl=3600
    ) as (client, _, email):
        response = await login(client, email)
        assert response.json()["expires_in"] == 600
        access = response.json()["access_token"]
        clock.advance(599)
        assert (await verify_token(client, access)).status_code == 200
        clock.advance(1)
        checked = await verify_token(client, access)
        assert_problem(checked, 401, "TOKEN_EXPIRED")


async def test_refresh_and_logout_from_another_site_are_rejected(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    email, access, token = await remembered_user(client, smtp.mailbox, "csrf")
    for source in HOSTILE_SOURCES:
        refreshed = await refresh(client, token, **source)
        assert refreshed.status_code == 403, source
        assert refreshed.json()["code"] == "CSRF_REJECTED"
        logged_out = await client.post("/api/v1/auth/logout", headers={**bearer(access), **source})
        assert logged_out.status_code == 403, source
        assert logged_out.json()["code"] == "CSRF_REJECTED"
    # The rejected requests changed nothing: the token still works, once.
    assert (await refresh(client, token)).status_code == 200


async def test_our_own_origin_allowed_origins_and_no_origin_may_refresh(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(
        database_url, smtp, "origins", allowed_origins=["https://app.example"]
    ) as (client, _, email):
        access, token = await remembered_login(client, email)
        for source in (
            {"Origin": PUBLIC_URL},
            {"Origin": "https://app.example"},
            {"Referer": f"{PUBLIC_URL}/account?tab=security"},
            {},
        ):
            response = await refresh(client, token, **source)
            assert response.status_code == 200, (source, response.text)
            token = refresh_token_in(response)
            access = response.json()["access_token"]
        logged_out = await client.post(
            "/api/v1/auth/logout", headers={**bearer(access), "Origin": "https://app.example"}
        )
        assert logged_out.status_code == 204


@pytest.mark.parametrize("path", ["/api/v1/auth/refresh", "/api/v1/auth/logout"])
async def test_a_cross_site_request_is_rejected_before_its_credentials_are_read(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, headers={"Origin": "https://evil.example"})
    assert_problem(response, 403, "CSRF_REJECTED")


async def test_a_refresh_whose_answer_was_lost_may_be_presented_again_once(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email, _, first_refresh = await remembered_user(client, smtp.mailbox, "retry")
    lost = await refresh(client, first_refresh)  # as if a 503 or a cut connection hid it
    assert lost.status_code == 200

    retried = await refresh(client, first_refresh)

    assert retried.status_code == 200
    assert retried.json()["session_id"] == lost.json()["session_id"]
    assert (await refresh(client, refresh_token_in(retried))).status_code == 200
    assert await audit_events_of(services, email, "refresh_reuse_detected") == []
    # The successor nobody received is spent: whoever presents it is taken for a thief.
    assert_problem(await refresh(client, refresh_token_in(lost)), 401, "REFRESH_TOKEN_REUSED")
    assert_problem(await refresh(client, first_refresh), 401, "INVALID_REFRESH_TOKEN")
