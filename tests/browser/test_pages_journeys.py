"""Issue 17's journeys on the hosted pages, in Chromium against a real `bastion serve` on
localhost, reading mail from the test SMTP server."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.sync_api import Route, expect

from tests.browser.pages_support import (
    APP_ORIGIN,
    People,
    Person,
    chromium,
    mail_link,
    pages_server,
    people,
    signed_up,
)
from tests.support import STRONG_PASSWORD, SmtpServer, random_email

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses
NEW_PASSWORD = "Another-Horse-8"


def on_account(person: Person, email: str) -> None:
    expect(person.page).to_have_url(re.compile(r"/account$"))
    expect(person.page.locator("[data-email]")).to_contain_text(email)


def test_journey_1_sign_up_verify_sign_in_and_see_the_account(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    email = signed_up(person, smtp.mailbox)
    person.page.get_by_role("link", name="Continue").click()
    expect(person.page).to_have_url(re.compile(r"/login$"))
    person.sign_in(email)
    on_account(person, email)
    expect(person.page.get_by_role("link", name="Sessions", exact=True)).to_be_visible()


def test_journey_2_a_wrong_password_gives_the_generic_error(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    email = signed_up(person, smtp.mailbox)
    for address in (email, random_email("nobody")):
        person.sign_in(address, "Wrong-Horse-1")
        summary = person.page.get_by_role("alert")
        expect(summary).to_contain_text("Invalid email or password")
        expect(summary).to_be_focused()
    expect(person.page.get_by_label("Password", exact=True)).to_have_value("")


def test_journey_3_forgot_reset_and_the_other_browser_is_signed_out(
    people: People, smtp: SmtpServer
) -> None:
    first, second = people.new(), people.new()
    email = signed_up(first, smtp.mailbox)
    first.sign_in(email)
    on_account(first, email)

    second.goto("/login")
    second.page.get_by_role("link", name="Forgot your password?").click()
    second.page.get_by_label("Email address").fill(email)
    second.page.get_by_role("button", name="Email me a link").click()
    expect(second.page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    second.open_link(mail_link(smtp.mailbox, email, "/reset-password"))
    expect(second.page).to_have_url(re.compile(r"/reset-password$"))
    second.page.get_by_label("New password").fill(NEW_PASSWORD)
    second.page.get_by_role("button", name="Set my new password").click()
    expect(second.page.get_by_role("heading", name="Password changed")).to_be_visible()

    first.page.get_by_role("link", name="Activity", exact=True).click()
    expect(first.page).to_have_url(re.compile(r"/login\?return_to=/account/activity$"))
    first.page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    first.page.get_by_label("Email address").fill(email)
    first.page.get_by_role("button", name="Sign in", exact=True).click()
    expect(first.page).to_have_url(re.compile(r"/account/activity$"))
    expect(first.page.locator('[data-event-type="password_reset"]')).to_have_count(1)


def test_journey_6_a_session_revoked_from_another_browser_is_signed_out_on_its_next_click(
    people: People, smtp: SmtpServer
) -> None:
    first, second = people.new(), people.new()
    email = signed_up(first, smtp.mailbox)
    first.sign_in(email)
    second.sign_in(email)
    on_account(second, email)

    first.page.get_by_role("link", name="Sessions", exact=True).click()
    rows = first.page.locator("[data-session-id]")
    expect(rows).to_have_count(2)
    expect(first.page.locator("[data-current]")).to_have_count(1)
    other = first.page.locator("[data-session-id]:not([data-current])")
    other.get_by_role("button", name="Sign out this session").click()
    expect(rows).to_have_count(1)
    expect(first.page.locator("[data-current]")).to_have_count(1)

    second.page.get_by_role("link", name="Sessions", exact=True).click()
    expect(second.page).to_have_url(re.compile(r"/login\?return_to=/account/sessions$"))


def test_journey_11_return_to_an_allowed_origin_is_followed_and_any_other_refused(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    email = signed_up(person, smtp.mailbox)

    def the_app(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body="<title>App</title>Welcome back")

    person.context.route(f"{APP_ORIGIN}/**", the_app)
    person.goto(f"/login?return_to={quote(APP_ORIGIN + '/welcome?from=bastion')}")
    person.page.get_by_label("Email address").fill(email)
    person.page.get_by_label("Password", exact=True).fill(STRONG_PASSWORD)
    person.page.get_by_role("button", name="Sign in", exact=True).click()
    expect(person.page).to_have_url(f"{APP_ORIGIN}/welcome?from=bastion")
    expect(person.page.locator("body")).to_have_text("Welcome back")

    for refused in (
        "//evil.example/x",
        "https:evil.example",
        "/\\evil.example",
        "https://app.example.test@evil.example/",
    ):
        person.goto("/login")
        person.page.get_by_role("button", name="Sign out").click()
        person.goto(f"/login?return_to={quote(refused)}")
        person.page.get_by_label("Email address").fill(email)
        person.page.get_by_label("Password", exact=True).fill(STRONG_PASSWORD)
        person.page.get_by_role("button", name="Sign in", exact=True).click()
        on_account(person, email)
    assert not [url for url in person.requests if "evil" in url.split("?")[0]]


def forged(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<title>Win a prize</title><form method="post" action="{action}">{inputs}'
        "<button>Claim my prize</button></form>"
    )


def test_journey_12_a_forged_cross_site_form_post_is_refused(
    people: People, smtp: SmtpServer
) -> None:
    victim, elsewhere = people.new(), people.new()
    email = signed_up(victim, smtp.mailbox)
    elsewhere.sign_in(email)
    victim.sign_in(email)
    server = victim.server.base_url
    target = f"{server}/account/sessions"
    for origin in ("http://evil.example.test", f"http://localhost:{victim.server.port + 1}"):
        victim.context.route(
            f"{origin}/**",
            lambda route: route.fulfill(
                status=200, content_type="text/html", body=forged(target, {"end": "others"})
            ),
        )
        victim.page.goto(f"{origin}/prize")
        victim.page.get_by_role("button", name="Claim my prize").click()
        expect(
            victim.page.get_by_role("heading", name="This form could not be accepted")
        ).to_be_visible()
    victim.goto("/account/sessions")
    expect(victim.page.locator("[data-session-id]")).to_have_count(2)
    elsewhere.goto("/account")
    on_account(elsewhere, email)


def test_journey_13_the_lockout_page_after_five_failures(people: People, smtp: SmtpServer) -> None:
    person = people.new()
    email = signed_up(person, smtp.mailbox)
    for _ in range(5):
        person.sign_in(email, "Wrong-Horse-1")
        expect(person.page.get_by_role("alert")).to_contain_text("Invalid email or password")
    person.sign_in(email)
    expect(person.page.get_by_role("alert")).to_contain_text(
        "Too many attempts. Please try again later"
    )
    expect(person.page).to_have_url(re.compile(r"/login$"))
