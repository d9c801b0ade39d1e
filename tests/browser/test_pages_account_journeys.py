"""Issue 17's journeys 7, 8 and 9 on the account pages, in Chromium against a real
`bastion serve` on localhost, reading mail from the test SMTP server: change the email through
the emailed link, download my data, delete the account."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.browser.pages_support import (
    People,
    chromium,
    mail_link,
    pages_server,
    people,
    signed_up,
)
from tests.support import SmtpServer, random_email

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses


def test_journey_7_change_the_email_through_the_emailed_link(
    people: People, smtp: SmtpServer
) -> None:
    person = people.new()
    page = person.page
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    new_email = random_email("browser-moved")
    page.get_by_label("New email address").fill(new_email)
    page.get_by_role("button", name="Change email address").click()
    expect(page.get_by_role("status")).to_contain_text(f"We sent a link to {new_email}")
    expect(page.locator("[data-email]")).to_contain_text(email)

    person.open_link(mail_link(smtp.mailbox, new_email, "/confirm-email"))
    expect(page).to_have_url(re.compile(r"/confirm-email$"))
    page.get_by_role("button", name="Confirm my new email").click()
    expect(page.get_by_role("heading", name="Email address changed")).to_be_visible()
    person.sign_in(new_email)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator("[data-email]")).to_contain_text(new_email)
    assert all("token=" not in url for url in person.navigations if "/confirm-email" not in url)


def test_journey_8_download_my_data(people: People, smtp: SmtpServer) -> None:
    person = people.new()
    page = person.page
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    page.get_by_role("link", name="Download your data, or delete your account").click()
    expect(page).to_have_url(re.compile(r"/account/data$"))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    saved = download.value
    assert re.fullmatch(r"bastion-export-\d{8}T\d{6}Z\.json", saved.suggested_filename)
    with open(saved.path(), encoding="utf-8") as file:
        data = json.load(file)
    assert data["user"]["email"] == email
    assert {event["type"] for event in data["security_events"]} >= {"login_succeeded"}


def test_journey_9_delete_the_account(people: People, smtp: SmtpServer) -> None:
    person = people.new()
    page = person.page
    email = signed_up(person, smtp.mailbox)
    person.sign_in(email)
    person.goto("/account/data")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    page.get_by_label("Password", exact=True).fill("Correct-Horse-7")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your account was deleted")).to_be_visible()
    person.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?return_to=/account$"))
    person.sign_in(email)
    expect(page.get_by_role("alert")).to_contain_text("Invalid email or password")
