"""The hosted pages in a real browser: one `bastion serve` for them all on `localhost` (a secure
context, as WebAuthn and the __Host- cookies need) mailing the test SMTP server, one Chromium per
module, and a fresh context per person, each with an address of its own (X-Forwarded-For, the
server trusting its local proxy), so lockouts and limits never cross tests."""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS
from tests.serving import ServedBastion, served_bastion
from tests.support import (
    STRONG_PASSWORD,
    Mailbox,
    SmtpServer,
    copied_postgres_database,
    random_email,
    text_of,
)

APP_ORIGIN = "https://app.example.test"
MAIL_SECONDS = 15
_addresses = itertools.count(random.randrange(1, 200) * 256)  # noqa: S311 - not a secret


@dataclass
class Person:
    """One browser context: a person with their own cookies and their own IP address."""

    context: BrowserContext
    page: Page
    server: ServedBastion
    navigations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(path)

    def sign_in(self, email: str, password: str = STRONG_PASSWORD) -> None:
        self.goto("/login")
        self.page.get_by_label("Email address").fill(email)
        self.page.get_by_label("Password", exact=True).fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def open_link(self, url: str) -> None:
        """Open a link from an email (sent with the server's public URL)."""
        self.page.goto(url)


@pytest.fixture(scope="session")
def pages_server(
    postgresql_template: str, smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBastion]:
    """On a database of its own: it lives as long as the test run, and over the run's shared
    database its outbox worker would send, in its own dress, the mail the other tests queue."""
    log = tmp_path_factory.mktemp("pages") / "serve.log"
    with (
        copied_postgres_database(postgresql_template) as database_url,
        served_bastion(
            database_url,
            log,
            host="localhost",
            smtp_url=smtp.url,
            outbox_poll_seconds="0.2",
            trusted_proxies="127.0.0.1/32,::1/128",
            allowed_redirect_origins=APP_ORIGIN,
        ) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def chromium(pages_server: ServedBastion) -> Iterator[Browser]:
    """One Chromium for the module, opened once the server (and its database) is ready: the
    sync Playwright keeps an event loop running, where no other fixture may start one."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is required: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class People:
    """Opens browser contexts on the served Bastion and closes them after the test."""

    def __init__(self, browser: Browser, server: ServedBastion) -> None:
        self._browser = browser
        self._server = server
        self._opened: list[BrowserContext] = []

    def new(self, *, javascript: bool = True, locale: str = "en-GB") -> Person:
        address = next(_addresses)
        context = self._browser.new_context(
            base_url=self._server.base_url,
            java_script_enabled=javascript,
            locale=locale,
            extra_http_headers={
                "X-Forwarded-For": f"198.18.{address // 256 % 256}.{address % 256}"
            },
        )
        self._opened.append(context)
        person = Person(context, context.new_page(), self._server)
        own = urlsplit(self._server.base_url).netloc

        def only_bastion(route: Route) -> None:
            person.requests.append(route.request.url)
            if urlsplit(route.request.url).netloc == own:
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_bastion)
        person.page.on(
            "framenavigated",
            lambda frame: (
                person.navigations.append(frame.url) if frame == person.page.main_frame else None
            ),
        )
        return person

    def close(self) -> None:
        for context in self._opened:
            context.close()


@pytest.fixture
def people(chromium: Browser, pages_server: ServedBastion) -> Iterator[People]:
    opened = People(chromium, pages_server)
    try:
        yield opened
    finally:
        opened.close()


def mail_link(mailbox: Mailbox, to: str, path: str, count: int = 1) -> str:
    """The ``path`` link of the ``count``-th email to ``to`` that has one, once it arrives."""
    pattern = re.compile(rf"https?://\S+{re.escape(path)}\?token=[A-Za-z0-9_-]+")
    deadline = time.monotonic() + MAIL_SECONDS
    while time.monotonic() < deadline:
        links = [pattern.search(text_of(message)) for message in mailbox.received(to)]
        found = [link.group(0) for link in links if link is not None]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no email to {to} with a {path} link arrived")


def signed_up(person: Person, mailbox: Mailbox, password: str = STRONG_PASSWORD) -> str:
    """A new account made and confirmed on the pages by ``person``; its address."""
    email = random_email("browser")
    page = person.page
    person.goto("/register")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("form[action='/register'] button[type=submit]").click()
    expect(page.locator("h1")).to_have_count(1)
    person.open_link(mail_link(mailbox, email, "/verify-email"))
    page.locator("form[action='/verify-email'] button[type=submit]").click()
    expect(page.locator(".notice.success")).to_be_visible()
    return email
