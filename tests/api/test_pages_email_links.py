"""The pages emailed links open, and the forms that mail them: sign-up, confirmation, a new
confirmation link, a forgotten password and its reset. Without script, and with no token in
any URL but the emailed link's own, which the page swaps for a cookie at once."""

from __future__ import annotations

from email.message import EmailMessage

import httpx

from bastion.core.clock import FrozenClock
from tests.page_forms import (
    SESSION_COOKIE,
    cookie_header,
    fill_in,
    form_to,
    page_sign_in,
    page_sign_up,
)
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    forgot_password,
    link_in,
    login,
    random_email,
    register,
    token_in,
    verify_token,
)

NEW_PASSWORD = "Another-Horse-8"


async def test_the_sign_up_page_shows_the_password_rules_before_the_first_try(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/register")
    form = form_to(page, "/register")
    assert set(form.fields) == {"csrf_token", "email", "password"}
    assert form.autocomplete == {"email": "email", "password": "new-password"}
    for rule in ("At least 8 characters", "An uppercase letter", "A digit", "Not a common"):
        assert rule in page.text
    assert 'role="alert"' not in page.text


async def test_a_weak_password_marks_the_rules_it_breaks(client: httpx.AsyncClient) -> None:
    page = await fill_in(client, "/register", email=random_email("weak"), password="password")
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert '<li data-rule="no_uppercase" class="broken">' in page.text
    assert '<li data-rule="common" class="broken">' in page.text
    assert '<li data-rule="too_short">' in page.text, "a rule it follows is not marked"


async def test_signing_up_on_the_pages_then_confirming_opens_the_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await page_sign_up(client, smtp.mailbox, random_email("pages"), STRONG_PASSWORD)
    assert (await page_sign_in(client, email, STRONG_PASSWORD)).status_code == 303
    assert email in (await client.get("/account")).text


async def test_a_sign_up_with_a_taken_address_looks_like_any_other(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("taken")
    first = await fill_in(client, "/register", email=email, password=STRONG_PASSWORD)
    again = await fill_in(client, "/register", email=email, password=STRONG_PASSWORD)
    assert first.status_code == again.status_code == 200
    assert "Check your inbox" in first.text and "Check your inbox" in again.text
    await smtp.mailbox.wait_for(email, "someone tried to sign up")


async def verification_link(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> str:
    assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
    return link_in(await smtp.mailbox.wait_for(email, "confirm your email"), "/verify-email")


async def test_a_second_click_on_a_used_link_says_the_address_is_confirmed(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("twice")
    link = await verification_link(client, smtp, email)
    opened = await client.get(link)
    assert opened.headers["location"] == "/verify-email"
    first = await fill_in(client, "/verify-email")
    assert first.status_code == 200 and "Your email is confirmed" in first.text
    await client.get(link)
    second = await fill_in(client, "/verify-email")
    assert second.status_code == 200
    assert "This link was used already: your email address is confirmed." in second.text
    assert "invalid" not in second.text
    assert (await login(client, email)).status_code == 200


async def test_an_expired_link_offers_to_send_a_new_one(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "expiry", clock=clock) as (client, _, _email):
        email = random_email("expired")
        await client.get(await verification_link(client, smtp, email))
        clock.advance(2 * 86400)
        expired = await fill_in(client, "/verify-email")
        assert expired.status_code == 410
        assert "This link has expired" in expired.text
        assert 'href="/verify-email/resend"' in expired.text
        resent = await fill_in(client, "/verify-email/resend", email=email)
        assert resent.status_code == 200
        assert len(await smtp.mailbox.settled(email, "Confirm", expected=2)) == 2


async def test_a_page_without_its_link_says_the_link_is_incomplete(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/verify-email", "/reset-password", "/verify-email?token=%3Cscript%3E"):
        page = await client.get(path, follow_redirects=True)
        assert page.status_code == 200
        assert "This link is missing its token" in page.text
        assert "<script>" not in page.text


async def reset_mails(smtp: SmtpServer, email: str) -> list[EmailMessage]:
    return [m for m in smtp.mailbox.received(email) if "reset" in str(m["Subject"]).lower()]


async def test_forgot_and_reset_on_the_pages_sign_every_device_out(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "reset") as (client, _, email):
        access = (await login(client, email)).json()["access_token"]
        await page_sign_in(client, email, STRONG_PASSWORD)
        asked = await fill_in(client, "/forgot-password", email=email)
        assert asked.status_code == 200 and "Check your inbox" in asked.text
        message = await smtp.mailbox.wait_for(email, "reset your password")
        opened = await client.get(link_in(message, "/reset-password"))
        assert opened.headers["location"] == "/reset-password"
        page = await client.get("/reset-password")
        assert form_to(page, "/reset-password").autocomplete == {"new_password": "new-password"}
        done = await fill_in(client, "/reset-password", new_password=NEW_PASSWORD)
        assert done.status_code == 200 and "Your password has been changed" in done.text
        assert "Max-Age=0" in cookie_header(done, SESSION_COOKIE)
        assert (await client.get("/account")).status_code == 303
        assert (await verify_token(client, access)).status_code == 401
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200
        again = await client.get("/reset-password")
        assert "This link is missing its token" in again.text, "the link's cookie is gone"
        assert token_in(message, "/reset-password") not in again.text


async def test_a_weak_new_password_keeps_the_link_for_another_try(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "reset") as (client, _, email):
        assert (await forgot_password(client, email)).status_code == 202
        await client.get(link_in(await smtp.mailbox.wait_for(email, "reset"), "/reset-password"))
        weak = await fill_in(client, "/reset-password", new_password="short")
        assert weak.status_code == 422 and 'class="broken"' in weak.text
        empty = await fill_in(client, "/reset-password", new_password="")
        assert empty.status_code == 422
        done = await fill_in(client, "/reset-password", new_password=NEW_PASSWORD)
        assert done.status_code == 200


async def test_an_expired_reset_link_offers_a_new_one(database_url: str, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "reset", clock=clock) as (client, _, email):
        assert (await forgot_password(client, email)).status_code == 202
        await client.get(link_in(await smtp.mailbox.wait_for(email, "reset"), "/reset-password"))
        clock.advance(2 * 3600)
        expired = await fill_in(client, "/reset-password", new_password=NEW_PASSWORD)
        assert expired.status_code == 410 and "This link has expired" in expired.text
        assert 'href="/forgot-password"' in expired.text


async def test_asking_for_a_link_answers_alike_for_an_unknown_address(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    nobody = random_email("nobody")
    for path in ("/forgot-password", "/verify-email/resend"):
        answer = await fill_in(client, path, email=nobody)
        assert answer.status_code == 200 and nobody in answer.text
        invalid = await fill_in(client, path, email="not an address")
        assert invalid.status_code == 422 and 'role="alert"' in invalid.text
    assert await smtp.mailbox.settled(nobody, quiet=0.3) == []
