"""The pages email links open, with JavaScript off: their forms post, and a handler completes the
step or shows the page again with the error. The token travels in the body, never in a URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser

import httpx
import pytest

from bastion.core.clock import FrozenClock
from tests.support import (
    PUBLIC_URL,
    SmtpServer,
    app_with_user,
    assert_problem,
    forgot_password,
    link_in,
    login,
    random_email,
    register,
    verify_token,
)

NEW_PASSWORD = "Another-Horse-8"
BROWSER = {"Origin": PUBLIC_URL}


@dataclass
class Form:
    method: str
    action: str
    in_noscript: bool
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._noscript = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "noscript":
            self._noscript = True
        elif tag == "form":
            self.forms.append(Form(found.get("method", "get"), found["action"], self._noscript))
        elif tag == "input" and self.forms:
            self.forms[-1].fields[found["name"]] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self._noscript = False


def the_form(page: httpx.Response) -> Form:
    """The one form of ``page``, checked to post to its own path with nothing in its URL."""
    parser = _Forms()
    parser.feed(page.text)
    [form] = parser.forms
    assert form.method == "post"
    assert form.action == page.url.path and "?" not in form.action
    return form


async def submit(
    client: httpx.AsyncClient, form: Form, headers: dict[str, str] = BROWSER, **typed: str
) -> httpx.Response:
    """Post ``form`` as a browser without script does: urlencoded, from our own origin."""
    return await client.post(form.action, data={**form.fields, **typed}, headers=headers)


async def reset_page(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> httpx.Response:
    """The page the link of a new reset email opens."""
    earlier = len(reset_mails(smtp, email))
    assert (await forgot_password(client, email)).status_code == 202
    for _ in range(500):
        if len(reset_mails(smtp, email)) > earlier:
            break
        await smtp.mailbox.count_after(email, delay=0.02)
    return await client.get(link_in(reset_mails(smtp, email)[-1], "/reset-password"))


def reset_mails(smtp: SmtpServer, email: str) -> list[EmailMessage]:
    return [m for m in smtp.mailbox.received(email) if "reset" in str(m["Subject"]).lower()]


async def test_the_reset_form_sets_the_new_password_without_script(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "noscript") as (client, _, email):
        access = (await login(client, email)).json()["access_token"]
        form = the_form(await reset_page(client, smtp, email))
        done = await submit(client, form, new_password=NEW_PASSWORD, repeat=NEW_PASSWORD)
        assert done.status_code == 200
        assert done.headers["content-type"].startswith("text/html")
        assert "Your password has been changed" in done.text
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200
        assert_problem(await verify_token(client, access), 401, "SESSION_REVOKED")


async def test_the_reset_form_shows_the_page_again_when_the_passwords_differ(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "noscript") as (client, _, email):
        form = the_form(await reset_page(client, smtp, email))
        differ = await submit(client, form, new_password=NEW_PASSWORD, repeat="Other-Horse-9")
        assert differ.status_code == 422
        assert "The two passwords differ." in differ.text
        assert the_form(differ).fields["token"] == form.fields["token"]
        weak = await submit(client, form, new_password="short", repeat="short")
        assert weak.status_code == 422
        assert "at least" in weak.text and the_form(weak).fields["token"] == form.fields["token"]
        done = await submit(client, form, new_password=NEW_PASSWORD, repeat=NEW_PASSWORD)
        assert done.status_code == 200, "the token survived the failed attempts"


async def test_the_reset_form_reports_a_used_or_expired_link_without_script(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "noscript", clock=clock) as (client, _, email):
        form = the_form(await reset_page(client, smtp, email))
        typed = {"new_password": NEW_PASSWORD, "repeat": NEW_PASSWORD}
        assert (await submit(client, form, **typed)).status_code == 200
        used = await submit(client, form, **typed)
        assert used.status_code == 400
        assert "invalid or has already been used" in used.text and "<form" not in used.text

        form = the_form(await reset_page(client, smtp, email))
        clock.advance(2 * 3600)
        expired = await submit(client, form, **typed)
        assert expired.status_code == 410 and "This link has expired" in expired.text


async def test_the_reset_form_refuses_a_post_from_another_site(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "noscript") as (client, _, email):
        form = the_form(await reset_page(client, smtp, email))
        typed = {"new_password": NEW_PASSWORD, "repeat": NEW_PASSWORD}
        cross_site = await submit(client, form, {"Origin": "https://evil.example"}, **typed)
        assert_problem(cross_site, 403, "CSRF_REJECTED")
        assert (await login(client, email, NEW_PASSWORD)).status_code == 401


async def test_the_reset_form_refuses_a_nul_as_the_api_does_and_shows_the_form_again(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "noscript") as (client, _, email):
        form = the_form(await reset_page(client, smtp, email))
        nul = f"{NEW_PASSWORD}\x00"
        refused = await submit(client, form, new_password=nul, repeat=nul)
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("text/html")
        assert "(NUL)" in refused.text
        assert the_form(refused).fields["token"] == form.fields["token"]
        assert (await login(client, email)).status_code == 200, "the password is unchanged"
        done = await submit(client, form, new_password=NEW_PASSWORD, repeat=NEW_PASSWORD)
        assert done.status_code == 200, "the token survived the refused attempt"


async def test_the_verify_form_refuses_a_nul_as_the_api_does_with_a_page(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, form = await signed_up(client, smtp)
    refused = await submit(client, form, token=f"{form.fields['token']}\x00")
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("text/html")
    assert "(NUL)" in refused.text
    assert (await login(client, email, NEW_PASSWORD)).json()["code"] == "EMAIL_NOT_VERIFIED"
    assert (await submit(client, form)).status_code == 200


@pytest.mark.parametrize("body", [b"", b"token=%FF%FE", b"token=" + b"a" * 600, b"\xff"])
async def test_a_form_post_without_a_usable_token_is_an_invalid_link(
    client: httpx.AsyncClient, body: bytes
) -> None:
    for path in ("/reset-password", "/verify-email"):
        response = await client.post(
            path,
            content=body,
            headers={**BROWSER, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert "This link is invalid" in response.text


async def signed_up(client: httpx.AsyncClient, smtp: SmtpServer) -> tuple[str, Form]:
    """A new sign-up's address and the form of the page its verification link opens."""
    email = random_email("noscript")
    assert (await register(client, email, NEW_PASSWORD)).status_code == 202
    link = link_in(await smtp.mailbox.wait_for(email, "confirm your email"), "/verify-email")
    return email, the_form(await client.get(link))


async def test_the_verify_page_confirms_the_email_with_its_no_script_form(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, form = await signed_up(client, smtp)
    assert form.in_noscript
    assert (await login(client, email, NEW_PASSWORD)).json()["code"] == "EMAIL_NOT_VERIFIED"
    confirmed = await submit(client, form)
    assert confirmed.status_code == 200
    assert "Your email is confirmed" in confirmed.text
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200
    again = await submit(client, form)
    assert again.status_code == 400 and "invalid or has already been used" in again.text


async def test_the_verify_form_refuses_a_post_from_another_site(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, form = await signed_up(client, smtp)
    assert_problem(
        await submit(client, form, {"Origin": "https://evil.example"}), 403, "CSRF_REJECTED"
    )
    assert (await login(client, email, NEW_PASSWORD)).json()["code"] == "EMAIL_NOT_VERIFIED"


async def test_a_page_opened_without_a_token_says_the_link_is_incomplete(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/reset-password", "/verify-email", "/verify-email?token=%3Cscript%3E"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "missing its token" in page.text
        assert "<form" not in page.text and "<script>" not in page.text


async def test_the_pages_let_a_browser_name_their_origin_in_form_posts(
    client: httpx.AsyncClient,
) -> None:
    """Under the server's no-referrer policy a browser would post with `Origin: null`, which the
    cross-site check refuses; the pages' own policy names the origin and nothing more."""
    for path in ("/reset-password?token=abc", "/verify-email?token=abc"):
        page = await client.get(path)
        assert "<meta name='referrer' content='strict-origin'>" in page.text
