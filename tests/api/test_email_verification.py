from __future__ import annotations

import httpx
import pytest

from bastion.core.clock import FrozenClock
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    login,
    make_settings,
    random_email,
    register,
    running_app,
    token_in,
)

VERIFY = "/api/v1/auth/verify-email"


async def verification_token(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> str:
    await register(client, email, STRONG_PASSWORD)
    return token_in(await smtp.mailbox.wait_for(email, "confirm your email"), "/verify-email")


async def test_confirming_verifies_the_account_once(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("verify")
    token = await verification_token(client, smtp, email)
    assert (await login(client, email)).json()["code"] == "EMAIL_NOT_VERIFIED"

    assert (await client.post(f"{VERIFY}/{token}")).status_code == 200
    assert (await login(client, email)).status_code == 200

    again = await client.post(f"{VERIFY}/{token}")
    assert again.status_code == 400
    assert again.json()["code"] == "TOKEN_INVALID"


@pytest.mark.parametrize("token", ["unknown-token", "x" * 300, "%C3%A9t%C3%A9"])
async def test_an_unknown_token_is_invalid(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(f"{VERIFY}/{token}")
    assert response.status_code == 400
    assert response.json()["code"] == "TOKEN_INVALID"


async def test_an_expired_link_says_so_in_plain_words(database_url: str, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    settings = make_settings(database_url, smtp.url, verification_token_ttl=600)
    async with running_app(settings, clock=clock) as (client, _):
        email = random_email("expired")
        token = await verification_token(client, smtp, email)
        clock.advance(601)
        response = await client.post(f"{VERIFY}/{token}")
    assert response.status_code == 410
    assert response.json()["code"] == "TOKEN_EXPIRED"
    assert response.json()["detail"] == "This link has expired. Please request a new one"


async def test_opening_the_link_changes_nothing_until_the_button_is_clicked(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("prefetch")
    token = await verification_token(client, smtp, email)
    opened = await client.get("/verify-email", params={"token": token})
    assert opened.status_code == 303 and opened.headers["location"] == "/verify-email"
    page = await client.get("/verify-email")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Confirm my email" in page.text
    assert token not in page.text, "the token stays in its cookie"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert (await login(client, email)).json()["code"] == "EMAIL_NOT_VERIFIED"


async def test_resend_mails_a_new_link_to_an_unverified_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("resend")
    first = await verification_token(client, smtp, email)
    response = await client.post(f"{VERIFY}/resend", json={"email": email})
    assert response.status_code == 202
    sent = await smtp.mailbox.wait_for_all(email, "", 2)
    tokens = {token_in(m, "/verify-email") for m in sent}
    assert len(tokens) == 2
    second = (tokens - {first}).pop()
    assert (await client.post(f"{VERIFY}/{second}")).status_code == 200


async def test_resend_answers_the_same_for_unknown_and_verified_accounts(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("verified")
    token = await verification_token(client, smtp, email)
    await client.post(f"{VERIFY}/{token}")
    unknown = await client.post(f"{VERIFY}/resend", json={"email": random_email("nobody")})
    verified = await client.post(f"{VERIFY}/resend", json={"email": email})
    assert unknown.status_code == verified.status_code == 202
    assert unknown.json() == verified.json()
    assert len(await smtp.mailbox.settled(email, expected=1, quiet=0.3)) == 1
