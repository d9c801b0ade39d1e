"""The change-of-email and invitation links in Chromium, with and without script: each page's
one button posts the token in its body, and the link's GET changes nothing."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.browser.pages_support import People, chromium, mail_link, pages_server, people
from tests.serving import ServedBastion
from tests.support import STRONG_PASSWORD, SmtpServer, bearer, random_email

__all__ = ["chromium", "pages_server", "people"]  # the fixtures this module uses
NEW_PASSWORD = "Another-Horse-8"


def api_token(server: ServedBastion, email: str, password: str = STRONG_PASSWORD) -> str:
    response = httpx.post(
        f"{server.base_url}/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_a_change_of_email_is_confirmed_with_the_pages_button_without_script(
    people: People, pages_server: ServedBastion, smtp: SmtpServer
) -> None:
    email, new = random_email("browser-owner"), random_email("browser-moved")
    pages_server.create_user(email, STRONG_PASSWORD)
    access = api_token(pages_server, email)
    asked = httpx.post(
        f"{pages_server.base_url}/api/v1/auth/me/email",
        json={"new_email": new},
        headers=bearer(access),
    )
    assert asked.status_code == 202, asked.text

    person = people.new(javascript=False)
    person.open_link(mail_link(smtp.mailbox, new, "/confirm-email"))
    expect(person.page).to_have_url(re.compile(r"/confirm-email$"))
    me = httpx.get(f"{pages_server.base_url}/api/v1/auth/me", headers=bearer(access))
    assert me.status_code == 200, "opening the link changed nothing"
    form = person.page.locator("form[action='/confirm-email']")
    expect(form.locator("input[name=token]")).to_have_count(1)
    form.get_by_role("button", name="Confirm my new email").click()
    expect(person.page.get_by_role("heading", name="Email address changed")).to_be_visible()
    assert all("token=" not in url for url in person.navigations[1:])

    person.sign_in(new)
    expect(person.page).to_have_url(re.compile(r"/account$"))
    expect(person.page.locator("[data-email]")).to_contain_text(new)


def test_an_invited_user_chooses_a_password_on_the_page_and_signs_in(
    people: People, pages_server: ServedBastion, smtp: SmtpServer
) -> None:
    admin, invited = random_email("browser-admin"), random_email("browser-invited")
    pages_server.create_user(admin, STRONG_PASSWORD, role="admin")
    made = httpx.post(
        f"{pages_server.base_url}/api/v1/admin/users",
        json={"email": invited, "invite": True},
        headers=bearer(api_token(pages_server, admin)),
    )
    assert made.status_code == 201, made.text

    person = people.new()
    person.open_link(mail_link(smtp.mailbox, invited, "/accept-invite"))
    expect(person.page).to_have_url(re.compile(r"/accept-invite$"))
    page = person.page
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Set my password").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my password").click()
    expect(page.get_by_role("heading", name="Your account is ready")).to_be_visible()

    person.sign_in(invited, NEW_PASSWORD)
    expect(person.page).to_have_url(re.compile(r"/account$"))
