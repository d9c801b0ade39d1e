"""Journey 10: with JavaScript disabled, sign up, confirm, sign in and reset a password on the
pages, and no secret ever appears in a URL: no password in any request's, and a token only in
the request that opens its emailed link, never in a page's address."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.pages_support import People, chromium, mail_link, pages_server, people
from tests.support import STRONG_PASSWORD, SmtpServer, random_email

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses
NEW_PASSWORD = "Another-Horse-8"


def test_journey_10_everything_works_without_script_and_no_secret_reaches_a_url(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new(javascript=False)
    page = person.page
    email = random_email("noscript")

    person.goto("/register")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(STRONG_PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    verify_link = mail_link(smtp.mailbox, email, "/verify-email")
    person.open_link(verify_link)
    expect(page).to_have_url(re.compile(r"/verify-email$"))
    page.get_by_role("button", name="Confirm my email").click()
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()

    person.sign_in(email)
    expect(page).to_have_url(re.compile(r"/account$"))
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a link").click()
    reset_link = mail_link(smtp.mailbox, email, "/reset-password")
    person.open_link(reset_link)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my new password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    person.sign_in(email, NEW_PASSWORD)
    expect(page.locator("[data-email]")).to_contain_text(email)

    secrets = [STRONG_PASSWORD, NEW_PASSWORD]
    tokens = [link.split("token=", 1)[1] for link in (verify_link, reset_link)]
    assert len(person.requests) > 10 and len(person.navigations) > 8
    for url in person.requests:
        assert not any(secret in url for secret in secrets), url
        if url not in (verify_link, reset_link):
            assert not any(token in url for token in tokens), url
    for url in person.navigations:
        assert "token" not in url and not any(s in url for s in secrets + tokens), url
