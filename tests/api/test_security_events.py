"""GET /api/v1/auth/me/security-events: the caller's own trail, newest first, paginated."""

from __future__ import annotations

import httpx

from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    access_token,
    bearer,
    login,
    random_email,
)

EVENTS = "/api/v1/auth/me/security-events"


async def test_a_user_sees_their_own_sign_ins_and_failures_newest_first(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("trail")
    token = await access_token(client, smtp.mailbox, email)
    assert (await login(client, email, "Wrong-Password-1")).status_code == 401
    assert (await login(client, email)).status_code == 200
    someone_else = random_email("other")
    await access_token(client, smtp.mailbox, someone_else)

    response = await client.get(EVENTS, headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    types = [item["type"] for item in body["items"]]
    assert types == [
        "login_succeeded",
        "login_failed",
        "login_succeeded",
        "email_verified",
        "registered",
    ]
    assert body["next_cursor"] is None
    failed = body["items"][1]
    assert failed["details"] == {"reason": "wrong_password"}
    assert failed["ip"] == "203.0.113.10"
    assert failed["user_agent"].startswith("python-httpx")
    ids = [item["id"] for item in body["items"]]
    assert ids == sorted(ids, reverse=True)
    assert all(item["occurred_at"] for item in body["items"])


async def test_the_trail_pages_with_a_cursor(client: httpx.AsyncClient, smtp: SmtpServer) -> None:
    email = random_email("pages")
    token = await access_token(client, smtp.mailbox, email)
    for _ in range(3):
        await login(client, email, STRONG_PASSWORD)
    everything = (await client.get(EVENTS, headers=bearer(token))).json()["items"]
    assert len(everything) == 6

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "4"} if cursor is None else {"limit": "4", "before": str(cursor)}
        page = (await client.get(EVENTS, params=params, headers=bearer(token))).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [item["id"] for item in everything]


async def test_security_events_need_a_bearer_token(client: httpx.AsyncClient) -> None:
    response = await client.get(EVENTS)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


async def test_the_page_size_is_bounded(client: httpx.AsyncClient, smtp: SmtpServer) -> None:
    token = await access_token(client, smtp.mailbox, random_email("bounded"))
    for limit in ("0", "101", "many"):
        response = await client.get(EVENTS, params={"limit": limit}, headers=bearer(token))
        assert response.status_code == 422, limit
        assert response.json()["code"] == "VALIDATION_ERROR"
