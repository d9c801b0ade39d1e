"""Logout, the list of the caller's sessions, ending one session, and logging out everywhere."""

from __future__ import annotations

import httpx

from bastion.bootstrap import Services
from tests.support import (
    CLIENT_IP,
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    audit_events_of,
    bearer,
    login,
    refresh,
    refresh_cookie_header,
    remembered_user,
    verified_user,
    verify_token,
)

SESSION_FIELDS = {
    "id",
    "created_at",
    "last_seen_at",
    "expires_at",
    "ip",
    "user_agent",
    "remember_me",
    "current",
    "aal",
}


async def fresh_access(client: httpx.AsyncClient, email: str, user_agent: str = "test") -> str:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": STRONG_PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def assert_revoked(client: httpx.AsyncClient, access: str) -> None:
    for path in ("/api/v1/auth/verify-token", "/api/v1/auth/me", "/api/v1/auth/sessions"):
        response = await client.get(path, headers=bearer(access))
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "SESSION_REVOKED"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def end_session(client: httpx.AsyncClient, access: str, session_id: str) -> httpx.Response:
    return await client.delete(f"/api/v1/auth/sessions/{session_id}", headers=bearer(access))


async def assert_live(client: httpx.AsyncClient, access: str) -> None:
    response = await verify_token(client, access)
    assert response.status_code == 200, response.text


async def test_logout_ends_the_session_everywhere_and_clears_the_cookie(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, access, token = await remembered_user(client, smtp.mailbox, "logout")
    other = await fresh_access(client, email)
    await assert_live(client, access)

    response = await client.post("/api/v1/auth/logout", headers=bearer(access))

    assert response.status_code == 204
    assert response.content == b""
    cleared = refresh_cookie_header(response)
    assert cleared.startswith("bastion_refresh=;")
    assert "Max-Age=0" in cleared
    assert "Path=/api/v1/auth" in cleared
    await assert_revoked(client, access)
    refreshed = await refresh(client, token)
    assert_problem(refreshed, 401, "INVALID_REFRESH_TOKEN")
    await assert_live(client, other)


async def test_the_session_list_shows_only_the_callers_active_sessions(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "lister")
    stranger = await verified_user(client, smtp.mailbox, "stranger")
    remembered = await login(client, email, remember_me=True)
    client.cookies.clear()
    laptop = remembered.json()["access_token"]
    phone = await fresh_access(client, email, user_agent="Phone/1.0")
    ended = await fresh_access(client, email)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(ended))).status_code == 204
    await fresh_access(client, stranger)

    response = await client.get("/api/v1/auth/sessions", headers=bearer(phone))

    assert response.status_code == 200
    sessions = {s["id"]: s for s in response.json()}
    phone_id = await session_id_of(client, phone)
    assert set(sessions) == {remembered.json()["session_id"], phone_id}
    for session in sessions.values():
        assert set(session) == SESSION_FIELDS
        assert session["ip"] == CLIENT_IP
    mine = sessions[phone_id]
    assert mine["current"] is True
    assert mine["user_agent"] == "Phone/1.0"
    assert mine["remember_me"] is False
    other = sessions[remembered.json()["session_id"]]
    assert other["current"] is False
    assert other["remember_me"] is True
    listed_by_laptop = await client.get("/api/v1/auth/sessions", headers=bearer(laptop))
    assert {s["id"]: s["current"] for s in listed_by_laptop.json()}[other["id"]] is True


async def test_a_user_can_end_one_of_their_other_sessions(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "ender")
    here = await fresh_access(client, email)
    there = await fresh_access(client, email)
    there_id = await session_id_of(client, there)

    response = await end_session(client, here, there_id)

    assert response.status_code == 204
    await assert_revoked(client, there)
    await assert_live(client, here)
    listed = await client.get("/api/v1/auth/sessions", headers=bearer(here))
    assert [s["id"] for s in listed.json()] == [(await session_id_of(client, here))]


async def test_another_users_session_or_an_unknown_id_is_not_found(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    mallory = await fresh_access(client, await verified_user(client, smtp.mailbox, "mallory"))
    alice = await fresh_access(client, await verified_user(client, smtp.mailbox, "alice"))
    alice_session = await session_id_of(client, alice)

    for session_id in (alice_session, "00000000-0000-4000-8000-000000000000"):
        response = await end_session(client, mallory, session_id)
        assert_problem(response, 404, "SESSION_NOT_FOUND")
    await assert_live(client, alice)


async def test_ending_an_already_ended_session_is_not_found(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "twice")
    here = await fresh_access(client, email)
    there = await fresh_access(client, email)
    there_id = await session_id_of(client, there)
    assert (await end_session(client, here, there_id)).status_code == 204
    again = await end_session(client, here, there_id)
    assert_problem(again, 404, "SESSION_NOT_FOUND")


async def test_logging_out_all_devices_ends_every_session_this_one_included(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email, here, token = await remembered_user(client, smtp.mailbox, "everywhere")
    others = [await fresh_access(client, email) for _ in range(3)]
    bystander = await fresh_access(client, await verified_user(client, smtp.mailbox, "bystander"))

    response = await client.delete("/api/v1/auth/sessions/all", headers=bearer(here))

    assert response.status_code == 204
    assert "Max-Age=0" in refresh_cookie_header(response)
    for access in (here, *others):
        await assert_revoked(client, access)
    assert (await refresh(client, token)).json()["code"] == "INVALID_REFRESH_TOKEN"
    await assert_live(client, bystander)
    [recorded] = await audit_events_of(services, email, "all_sessions_revoked")
    assert len(recorded.details["session_ids"]) == 4


async def test_session_endpoints_require_a_valid_access_token(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions/all"),
        ("DELETE", "/api/v1/auth/sessions/00000000-0000-4000-8000-000000000000"),
    ):
        for headers in ({}, bearer("not-a-token")):
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.json()["code"] == "INVALID_TOKEN"


async def session_id_of(client: httpx.AsyncClient, access: str) -> str:
    response = await verify_token(client, access)
    assert response.status_code == 200, response.text
    sid: str = response.json()["sid"]
    return sid
