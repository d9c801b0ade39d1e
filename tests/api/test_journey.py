"""The first journey: sign up, confirm the email, log in, call the API with the token."""

from __future__ import annotations

import httpx

from tests.support import (
    PUBLIC_URL,
    STRONG_PASSWORD,
    SmtpServer,
    bearer,
    html_of,
    link_in,
    login,
    random_email,
    register,
    token_in,
)


async def test_a_new_user_signs_up_confirms_and_calls_the_api(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("journey")
    response = await register(client, email, STRONG_PASSWORD)
    assert response.status_code == 202

    message = await smtp.mailbox.wait_for(email, "confirm your email")
    link = link_in(message, "/verify-email")
    assert link.startswith(f"{PUBLIC_URL}/verify-email?token=")
    assert link.replace("&", "&amp;") in html_of(message)

    page = await client.get(link.removeprefix(PUBLIC_URL), follow_redirects=True)
    assert page.status_code == 200
    assert "Confirm my email" in page.text

    confirmed = await client.post(f"/api/v1/auth/verify-email/{token_in(message, '/verify-email')}")
    assert confirmed.status_code == 200

    logged_in = await login(client, email)
    assert logged_in.status_code == 200
    body = logged_in.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 86400

    verified = await client.get("/api/v1/auth/verify-token", headers=bearer(body["access_token"]))
    assert verified.status_code == 200
    assert verified.json()["email"] == email
    assert verified.json()["sid"] == body["session_id"]

    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["is_verified"] is True
    assert me.json()["role"] == "user"
