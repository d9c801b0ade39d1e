"""Look-alike spellings of one address (case, full-width letters, a dotted capital İ) are one
account everywhere: sign-up, log-in, reset, resend, the per-address limits and the admin search."""

from __future__ import annotations

import httpx
import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    forgot_password,
    login,
    look_alike,
    make_settings,
    random_email,
    register,
    running_app,
    token_in,
    verified_user,
)


def test_the_look_alike_spelling_differs_from_the_address() -> None:
    assert look_alike("mail-i1@example.com") == "ｍａİｌ-İ１@ｅxample.com"


async def user_count(services: Services, email: str) -> int:
    async with services.uow(read_only=True) as uow:
        return len(await uow.users.search(email_contains=email, role=None, after=None, limit=10))


async def test_signing_up_with_a_look_alike_spelling_reaches_the_existing_account(
    client: httpx.AsyncClient, app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "alike")
    assert (await register(client, look_alike(email), STRONG_PASSWORD)).status_code == 202
    await smtp.mailbox.wait_for(email, "someone tried to sign up")
    assert await user_count(app[1], email) == 1


async def test_a_look_alike_spelling_logs_in_to_the_one_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "alike")
    response = await login(client, look_alike(email))
    assert response.status_code == 200, response.text
    me = await client.get("/api/v1/auth/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["email"] == email


async def test_an_account_signed_up_with_a_look_alike_spelling_is_stored_under_the_address(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("alike")
    assert (await register(client, look_alike(email), STRONG_PASSWORD)).status_code == 202
    await smtp.mailbox.wait_for(email, "confirm your email")
    assert (await login(client, email)).json()["code"] == "EMAIL_NOT_VERIFIED"


async def test_a_reset_asked_for_a_look_alike_spelling_reaches_the_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "alike")
    assert (await forgot_password(client, look_alike(email))).status_code == 202
    token = token_in(await smtp.mailbox.wait_for(email, "reset your password"), "/reset-password")
    reset = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "Another-Horse-8"}
    )
    assert reset.status_code == 200, reset.text
    assert (await login(client, email, "Another-Horse-8")).status_code == 200


async def test_a_resend_asked_for_a_look_alike_spelling_reaches_the_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("alike")
    assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
    resend = await client.post(
        "/api/v1/auth/verify-email/resend", json={"email": look_alike(email)}
    )
    assert resend.status_code == 202
    assert len(await smtp.mailbox.settled(email, expected=2)) == 2


async def test_look_alike_spellings_share_one_per_address_limit(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, forgot_password_per_hour=2)
    async with running_app(settings) as (client, _):
        email = random_email("alike")
        spellings = [email, email.upper(), look_alike(email)]
        answers = [(await forgot_password(client, spelt)).status_code for spelt in spellings]
        assert answers == [202, 202, 429]


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/v1/auth/register", {"password": STRONG_PASSWORD}),
        ("/api/v1/auth/login", {"password": STRONG_PASSWORD}),
        ("/api/v1/auth/forgot-password", {}),
        ("/api/v1/auth/verify-email/resend", {}),
    ],
)
async def test_an_address_with_a_display_name_is_refused(
    client: httpx.AsyncClient, path: str, extra: dict[str, str]
) -> None:
    body = {"email": f"Alice <{random_email()}>", **extra}
    assert_problem(await client.post(path, json=body), 422, "VALIDATION_ERROR")


async def test_an_address_that_folds_into_no_address_is_refused(client: httpx.AsyncClient) -> None:
    """A full-width ＠ inside the part before the @ is a letter-like symbol until folded."""
    body = {"email": "a＠b@example.com", "password": STRONG_PASSWORD}
    assert_problem(await client.post("/api/v1/auth/register", json=body), 422, "VALIDATION_ERROR")


async def test_the_admin_search_finds_an_address_by_a_look_alike_spelling(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    admin_email = random_email("alike-admin")
    await services.accounts.create_user(admin_email, STRONG_PASSWORD, Role.ADMIN)
    admin = bearer((await login(client, admin_email)).json()["access_token"])
    email = await verified_user(client, smtp.mailbox, "alike")
    found = await client.get(
        "/api/v1/admin/users", params={"email": look_alike(email)}, headers=admin
    )
    assert [user["email"] for user in found.json()["items"]] == [email]
