"""Changing the password while signed in: other sessions end, this one stays."""

from __future__ import annotations

import httpx

from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    bearer,
    login,
    random_email,
    refresh,
    register_verified,
    remembered_login,
)

NEW_PASSWORD = "Another-Horse-8"


async def change(
    client: httpx.AsyncClient, access: str, current: str, new: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access),
    )


async def verify(client: httpx.AsyncClient, access: str) -> httpx.Response:
    return await client.get("/api/v1/auth/verify-token", headers=bearer(access))


async def two_sessions(
    client: httpx.AsyncClient, smtp: SmtpServer, prefix: str
) -> tuple[str, str, str, str]:
    """A new user's email, an access token here, and an access and refresh token elsewhere."""
    email = random_email(prefix)
    await register_verified(client, smtp.mailbox, email)
    here = (await login(client, email)).json()["access_token"]
    elsewhere, elsewhere_refresh = await remembered_login(client, email)
    return email, here, elsewhere, elsewhere_refresh


async def test_changing_the_password_ends_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, here, elsewhere, elsewhere_refresh = await two_sessions(client, smtp, "change")

    response = await change(client, here, STRONG_PASSWORD)

    assert response.status_code == 204
    assert (await verify(client, here)).status_code == 200
    revoked = await verify(client, elsewhere)
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "SESSION_REVOKED"
    assert (await refresh(client, elsewhere_refresh)).json()["code"] == "INVALID_REFRESH_TOKEN"
    assert (await login(client, email)).json()["code"] == "INVALID_CREDENTIALS"
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200
    await smtp.mailbox.wait_for(email, "your password was changed")


async def test_a_wrong_current_password_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, here, elsewhere, _ = await two_sessions(client, smtp, "wrong")

    response = await change(client, here, "Not-My-Password-1")

    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert (await verify(client, elsewhere)).status_code == 200
    assert (await login(client, email)).status_code == 200
    assert (await login(client, email, NEW_PASSWORD)).status_code == 401


async def test_a_weak_new_password_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, here, elsewhere, _ = await two_sessions(client, smtp, "weak")

    response = await change(client, here, STRONG_PASSWORD, "password")

    assert response.status_code == 422
    assert response.json()["code"] == "WEAK_PASSWORD"
    assert (await verify(client, elsewhere)).status_code == 200
    assert (await login(client, email)).status_code == 200


async def test_changing_the_password_needs_a_live_session(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, here, _, _ = await two_sessions(client, smtp, "ended")
    assert (await client.post("/api/v1/auth/logout", headers=bearer(here))).status_code == 204

    revoked = await change(client, here, STRONG_PASSWORD)
    anonymous = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert revoked.status_code == 401
    assert revoked.json()["code"] == "SESSION_REVOKED"
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "INVALID_TOKEN"
    assert (await login(client, email)).status_code == 200
