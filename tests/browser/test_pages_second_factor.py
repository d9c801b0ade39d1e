"""Issue 17's journeys 4 and 5: an authenticator app and a passkey, set up on /account/security
and used to sign in, in Chromium against a real `bastion serve` on localhost (the RP ID is
`localhost`). TOTP codes come from pyotp; the passkey lives in Chromium's virtual authenticator
(DevTools WebAuthn.enable / WebAuthn.addVirtualAuthenticator, resident keys and user
verification)."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import expect

from tests.browser.pages_support import (
    People,
    Person,
    chromium,
    pages_server,
    people,
    signed_up,
)
from tests.support import SmtpServer

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses
SECRETS_IN_URLS = re.compile(r"token=|code=|password=|mfa_token|credential=", re.IGNORECASE)


def sign_out(person: Person) -> None:
    person.page.get_by_role("button", name="Sign out").first.click()
    expect(person.page).to_have_url(re.compile(r"/login$"))


def to_security(person: Person) -> None:
    person.page.get_by_role("link", name="Security", exact=True).click()
    expect(person.page).to_have_url(re.compile(r"/account/security$"))


def recovery_codes(person: Person) -> list[str]:
    codes = person.page.locator("[data-recovery-code]")
    expect(codes).to_have_count(10)
    return [code.strip() for code in codes.all_inner_texts()]


def test_journey_4_enrol_totp_sign_out_sign_in_with_a_code_then_with_a_recovery_code(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    page = person.page
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    to_security(person)
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("[data-totp-secret]").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    codes = recovery_codes(person)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as .txt").click()
    saved = download.value
    assert saved.suggested_filename == "recovery-codes.txt"
    with open(saved.path(), encoding="utf-8") as text:
        assert text.read().split() == codes
    page.get_by_role("link", name="I have saved my codes").click()
    expect(page.locator('[data-factor-type="totp"]')).to_have_count(1)
    sign_out(person)

    person.sign_in(email)
    expect(page).to_have_url(re.compile(r"/login/mfa$"))
    # The confirming code's step is spent: the next step's code is accepted (one step of drift).
    page.get_by_label("Code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    sign_out(person)

    person.sign_in(email)
    expect(page).to_have_url(re.compile(r"/login/mfa$"))
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    to_security(person)
    expect(page.locator("[data-recovery-codes-remaining]")).to_have_attribute(
        "data-recovery-codes-remaining", "9"
    )
    assert not [url for url in person.navigations if SECRETS_IN_URLS.search(url)]


def test_journey_5_add_a_passkey_sign_out_sign_in_with_the_passkey_alone(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    page = person.page
    devtools = person.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    to_security(person)
    page.get_by_label("Name (optional)").fill("This laptop")
    page.get_by_role("button", name="Add a passkey or security key").click()
    recovery_codes(person)  # the first factor brings them
    page.get_by_role("link", name="I have saved my codes").click()
    factor = page.locator('[data-factor-type="webauthn"]')
    expect(factor).to_have_count(1)
    expect(factor).to_contain_text("This laptop")
    expect(factor).to_contain_text("Passkey")
    sign_out(person)

    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator("[data-email]")).to_contain_text(email)
    assert not [url for url in person.navigations if SECRETS_IN_URLS.search(url)]


def test_an_authenticator_app_works_without_script(people: People, smtp: SmtpServer) -> None:
    person = people.new(javascript=False)
    page = person.page
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    to_security(person)
    # Keys need script: their buttons stay hidden, and the page says why.
    expect(page.get_by_role("button", name="Add a passkey or security key")).to_have_count(0)
    page.get_by_role("button", name="Set up an authenticator app").click()
    totp = pyotp.TOTP(page.locator("[data-totp-secret]").inner_text().strip())
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    codes = recovery_codes(person)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download as .txt").click()
    with open(download.value.path(), encoding="utf-8") as text:
        assert text.read().split() == codes
    page.get_by_role("link", name="I have saved my codes").click()
    sign_out(person)
    person.sign_in(email)
    expect(page).to_have_url(re.compile(r"/login/mfa$"))
    expect(page.get_by_role("button", name="Use a security key / passkey")).to_have_count(0)
    page.get_by_label("Code").fill(codes[1])
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    assert not [url for url in person.navigations if SECRETS_IN_URLS.search(url)]
