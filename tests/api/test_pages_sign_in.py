"""Signing in and out on the pages: the same log-in flow as the API, a session like any other,
carried by a cookie whose value is stored only as a hash."""

from __future__ import annotations

import hashlib

import httpx
from sqlalchemy import select, update

from bastion.adapters.sql import tables
from bastion.bootstrap import Services
from bastion.login.errors import AccountDisabled, EmailNotVerified, InvalidCredentials
from bastion.ratelimit.errors import TooManyAttempts
from tests.page_forms import (
    SESSION_COOKIE,
    cookie_header,
    fill_in,
    form_to,
    forms_of,
    page_sign_in,
    submit,
)
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    access_token,
    app_with_user,
    audit_rows,
    bearer,
    random_email,
    register,
    user_id_of,
)


async def test_the_sign_in_form_names_its_fields_as_the_api_and_password_managers_expect(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    form = form_to(page, "/login")
    # credential: where the script puts a passkey's answer ("Sign in with a passkey").
    assert set(form.fields) == {"csrf_token", "email", "password", "credential"}
    assert form.fields["credential"] == ""
    assert form.autocomplete == {"email": "email", "password": "current-password"}
    assert 'data-webauthn="get" data-options-intent="passkey_options"' in page.text
    assert 'name="remember_me" type="checkbox"' in page.text
    assert 'href="/register"' in page.text and 'href="/forgot-password"' in page.text
    assert '<html lang="en">' in page.text


async def test_signing_in_starts_a_session_the_api_lists_and_lands_on_the_account(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, services, email):
        signed_in = await page_sign_in(client, email, STRONG_PASSWORD)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
        cookie = cookie_header(signed_in, SESSION_COOKIE)
        for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
            assert attribute in cookie
        assert "Max-Age" not in cookie, "without remember me the cookie ends with the browser"
        value = cookie.split(";", 1)[0].split("=", 1)[1]

        account = await client.get("/account")
        assert account.status_code == 200 and email in account.text

        async with services.engine.connect() as connection:
            stored = (await connection.execute(select(tables.browser_tokens))).mappings().all()
        digests = {row["token_hash"] for row in stored}
        assert hashlib.sha256(value.encode()).hexdigest() in digests
        assert all(value not in str(dict(row)) for row in stored)

        client.cookies.clear()
        api_sessions = await client.get(
            "/api/v1/auth/sessions", headers=bearer(await api_token(client, email))
        )
        assert len(api_sessions.json()) == 2, "the page's session and the API's"
        assert len(await audit_rows_of(services, email, "login_succeeded")) == 2


async def api_token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    )
    token: str = response.json()["access_token"]
    return token


async def audit_rows_of(services: Services, email: str, kind: str) -> list[dict[str, object]]:
    user_id = await user_id_of(services, email)
    return [row for row in await audit_rows(services, kind) if row["user_id"] == user_id]


async def test_remember_me_keeps_the_cookie_for_the_remembered_session(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, _, email):
        signed_in = await page_sign_in(client, email, STRONG_PASSWORD, remember_me="on")
        assert "Max-Age=2592000" in cookie_header(signed_in, SESSION_COOKIE)


async def test_a_wrong_password_and_an_unknown_address_get_the_same_generic_error(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, _, email):
        wrong = await page_sign_in(client, email, "Wrong-Horse-1")
        unknown = await page_sign_in(client, random_email("nobody"), "Wrong-Horse-1")
        for page in (wrong, unknown):
            assert page.status_code == 401
            assert InvalidCredentials.detail in page.text
            assert 'role="alert"' in page.text
        assert email in wrong.text, "the address stays typed in"
        assert "Wrong-Horse-1" not in wrong.text


async def test_an_unverified_account_is_told_to_verify_with_a_resend_form(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("unverified")
    assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
    page = await page_sign_in(client, email, STRONG_PASSWORD)
    assert page.status_code == 403
    assert EmailNotVerified.detail in page.text
    resend = form_to(page, "/verify-email/resend")
    assert resend.fields["email"] == email
    sent = await submit(client, resend)
    assert sent.status_code == 200 and "Check your inbox" in sent.text
    assert len(await smtp.mailbox.settled(email, "Confirm", expected=2)) == 2


async def test_a_disabled_account_reads_as_the_api_says(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, services, email):
        async with services.engine.begin() as connection:
            await connection.execute(
                update(tables.users).where(tables.users.c.email == email).values(is_active=False)
            )
        page = await page_sign_in(client, email, STRONG_PASSWORD)
        assert page.status_code == 403 and AccountDisabled.detail in page.text


async def test_the_lockout_page_follows_five_failures(database_url: str, smtp: SmtpServer) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, _, email):
        for _ in range(5):
            assert (await page_sign_in(client, email, "Wrong-Horse-1")).status_code == 401
        blocked = await page_sign_in(client, email, STRONG_PASSWORD)
        assert blocked.status_code == 429
        assert TooManyAttempts.detail in blocked.text
        assert int(blocked.headers["retry-after"]) > 0
        assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")


async def test_an_oversized_or_empty_sign_in_is_refused_without_an_error(
    client: httpx.AsyncClient,
) -> None:
    for typed in ({"email": "a@example.com", "password": "x" * 300}, {"email": "", "password": ""}):
        page = await fill_in(client, "/login", **typed)
        assert page.status_code in (401, 422)
        assert InvalidCredentials.detail in page.text


async def test_revoking_the_page_session_signs_the_browser_out_on_its_next_request(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        browser_cookies = dict(client.cookies)
        client.cookies.clear()
        token = await api_token(client, email)
        sessions = (await client.get("/api/v1/auth/sessions", headers=bearer(token))).json()
        [page_session] = [s for s in sessions if not s["current"]]
        revoked = await client.delete(
            f"/api/v1/auth/sessions/{page_session['id']}", headers=bearer(token)
        )
        assert revoked.status_code == 204
        client.cookies.update(browser_cookies)
        account = await client.get("/account")
        assert account.status_code == 303
        assert account.headers["location"] == "/login?return_to=/account"


async def test_signing_out_ends_the_session_and_forgets_the_cookie(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, services, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        account = await client.get("/account")
        out = await submit(client, form_to(account, "/logout"))
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert "Max-Age=0" in cookie_header(out, SESSION_COOKIE)
        assert len(await audit_rows_of(services, email, "logout")) == 1
        assert (await client.get("/account")).status_code == 303


async def test_the_home_page_sends_people_where_they_belong(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page") as (client, _, email):
        assert (await client.get("/")).headers["location"] == "/login"
        await page_sign_in(client, email, STRONG_PASSWORD)
        assert (await client.get("/")).headers["location"] == "/account"
        assert (await client.get("/login")).headers["location"] == "/account"


async def test_an_api_bearer_token_opens_no_page(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    token = await access_token(client, smtp.mailbox)
    account = await client.get("/account", headers=bearer(token))
    assert account.status_code == 303, "pages are signed in by their own cookie only"
    assert forms_of(await client.get("/login"))


async def test_without_secure_cookies_the_page_cookies_lose_their_host_prefix(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "page", cookie_secure=False) as (
        client,
        _,
        email,
    ):
        signed_in = await page_sign_in(client, email, STRONG_PASSWORD)
        cookie = cookie_header(signed_in, "bastion_session")
        assert "Secure" not in cookie and "HttpOnly" in cookie
        assert (await client.get("/account")).status_code == 200
