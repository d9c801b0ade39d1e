"""Journey 14: axe-core finds no serious or critical violation on any page, in English and in
French, light and dark, wide and at 375 px.

axe-core comes from the `axe-playwright-python` package, which ships `axe.min.js` as package
data: pip installs it with the other test dependencies, no npm step and no network at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.pages_support import (
    People,
    Person,
    chromium,
    mail_link,
    pages_server,
    people,
    signed_up,
)
from tests.support import SmtpServer, random_email

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses
SERIOUS = {"serious", "critical"}
RULES = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    }
}
AXE = Axe()


def violations(person: Person) -> list[str]:
    results: dict[str, Any] = AXE.run(person.page, options=RULES).response
    return [
        f"{person.page.url} [{v['impact']}] {v['id']}: {[n['target'] for n in v['nodes']]}"
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]


def button(intent: str) -> str:
    """The submit button of the security page's form for ``intent`` (any language)."""
    return f"form:has(input[name=intent][value={intent}]) button[type=submit]"


def visits(
    person: Person, smtp: SmtpServer, people: People
) -> list[tuple[str, Callable[[], None]]]:
    """Every page, and its states worth a look (an error summary, a link opened)."""
    page = person.page
    email = signed_up(person, smtp.mailbox)
    secret: list[str] = []
    codes: list[str] = []
    elsewhere: list[Person] = []

    def password_sign_in(who: Person) -> None:
        who.goto("/login")
        who.page.locator("#email").fill(email)
        who.page.locator("#password").fill("Correct-Horse-7")
        who.page.locator("form[action='/login'] button[type=submit]").click()

    def security() -> None:
        # A second session, signed in with the password alone before the second factor exists:
        # it will need to confirm it's you at aal2.
        other = people.new(locale=person.page.evaluate("navigator.language"))
        password_sign_in(other)
        elsewhere.append(other)
        person.goto("/account/security")

    def totp_setup() -> None:
        page.locator(button("totp")).click()
        secret.append(page.locator("[data-totp-secret]").inner_text().strip())

    def totp_refused() -> None:
        page.locator("#code").fill("000000")
        page.locator("form[action='/account/security'] button[type=submit]").click()

    def recovery_codes() -> None:
        page.locator("#code").fill(pyotp.TOTP(secret[0]).now())
        page.locator("form[action='/account/security'] button[type=submit]").click()
        expect(page.locator("[data-recovery-code]")).to_have_count(10)
        codes.extend(page.locator("[data-recovery-code]").all_inner_texts())

    def confirm() -> None:
        person.context.add_cookies(elsewhere[0].context.cookies())
        person.goto("/account/security")
        page.locator(button("regenerate")).click()
        expect(page.locator("input[name='then.intent']")).to_have_count(1)

    def confirm_refused() -> None:
        page.locator("#password").fill("Wrong-Horse-1")
        page.locator("form[action='/account/security'] button[type=submit]").click()
        expect(page.locator("[data-error-summary]")).to_have_count(1)

    def second_step() -> None:
        person.context.clear_cookies()
        password_sign_in(person)
        expect(page).to_have_url(re.compile(r"/login/mfa$"))

    def change_email(address: str) -> Callable[[], None]:
        def visit() -> None:
            person.goto("/account")
            page.locator("#new_email").fill(address)
            page.locator("form[action='/account'] button[type=submit]").click()

        return visit

    def confirm_deletion() -> None:
        page.locator("#code").fill(codes[0].strip())
        page.locator("form[action='/login/mfa'] button[type=submit]").click()
        person.goto("/account/data")
        page.locator("form:has(input[name=intent][value=delete]) button").click()
        expect(page.locator("input[name='then.intent']")).to_have_count(1)

    def deleted() -> None:
        page.locator("#password").fill("Correct-Horse-7")
        page.locator("#code").fill(codes[1].strip())
        page.locator("form[action='/account/data'] button[type=submit]").click()
        expect(page.locator(".notice.success")).to_be_visible()

    def second_step_refused() -> None:
        page.locator("#code").fill("000000")
        page.locator("form[action='/login/mfa'] button[type=submit]").click()
        expect(page.locator("[data-error-summary]")).to_have_count(1)

    def failed_sign_in() -> None:
        person.goto("/login")
        page.locator("#email").fill(email)
        page.locator("#password").fill("Wrong-Horse-1")
        page.locator("form[action='/login'] button[type=submit]").click()

    def refused_sign_up() -> None:
        person.goto("/register")
        page.locator("#email").fill("not an address")
        page.locator("#password").fill("short")
        page.locator("form[action='/register'] button[type=submit]").click()

    def forgot() -> None:
        person.goto("/forgot-password")
        page.locator("#email").fill(email)
        page.locator("form[action='/forgot-password'] button[type=submit]").click()

    def reset_link() -> None:
        person.open_link(mail_link(smtp.mailbox, email, "/reset-password"))

    def refused_reset() -> None:
        page.locator("#new_password").fill("short")
        page.locator("form[action='/reset-password'] button[type=submit]").click()

    def forged_form() -> None:
        person.goto("/verify-email/resend")
        page.locator("input[name=csrf_token]").evaluate("field => { field.value = 'forged'; }")
        page.locator("#email").fill(email)
        page.locator("form[action='/verify-email/resend'] button[type=submit]").click()

    def signed_in(path: str) -> Callable[[], None]:
        def visit() -> None:
            person.goto(path)
            if "/login" in page.url:
                page.locator("#email").fill(email)
                page.locator("#password").fill("Correct-Horse-7")
                page.locator("form[action='/login'] button[type=submit]").click()

        return visit

    return [
        ("verify-email (done)", lambda: None),
        ("login", lambda: person.goto("/login")),
        ("login (refused)", failed_sign_in),
        ("register", lambda: person.goto("/register")),
        ("register (refused)", refused_sign_up),
        ("forgot-password", lambda: person.goto("/forgot-password")),
        ("check your inbox", forgot),
        ("reset-password (form)", reset_link),
        ("reset-password (refused)", refused_reset),
        ("error page (forged form)", forged_form),
        ("verify-email (no link)", lambda: person.goto("/verify-email")),
        ("verify-email/resend", lambda: person.goto("/verify-email/resend")),
        ("account", signed_in("/account")),
        ("account/sessions", signed_in("/account/sessions")),
        ("account/activity", signed_in("/account/activity")),
        ("account (change of email refused)", change_email("not an address")),
        ("account (change of email sent)", change_email(random_email("axe-moved"))),
        ("account/data", lambda: person.goto("/account/data")),
        ("account/security", security),
        ("authenticator app set-up", totp_setup),
        ("authenticator app set-up (refused)", totp_refused),
        ("recovery codes", recovery_codes),
        ("account/security (two-step on)", lambda: person.goto("/account/security")),
        ("confirm it's you", confirm),
        ("confirm it's you (refused)", confirm_refused),
        ("login/mfa", second_step),
        ("login/mfa (refused)", second_step_refused),
        ("confirm it's you (deleting the account)", confirm_deletion),
        ("account deleted", deleted),
    ]


@pytest.mark.parametrize("locale", ["en-GB", "fr-FR"])
def test_journey_14_axe_finds_no_serious_violation_on_any_page(
    people: People, smtp: SmtpServer, locale: str
) -> None:
    person = people.new(locale=locale)
    found: list[str] = []
    for name, visit in visits(person, smtp, people):
        visit()
        expect(person.page.locator("html")).to_have_attribute("lang", locale[:2])
        for scheme, width in (("light", 1280), ("dark", 375)):
            person.page.emulate_media(color_scheme=scheme)
            person.page.set_viewport_size({"width": width, "height": 900})
            found += [f"{name} {scheme} {width}px: {v}" for v in violations(person)]
    assert found == []
