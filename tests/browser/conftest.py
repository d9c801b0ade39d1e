"""A real browser on a real server: Debian's Chromium, driven by Playwright, against
`bastion serve` on each database. Pages that Bastion serves are tested here.

Every request the page makes is recorded, and any to another host is refused: Bastion's pages
must work with no other host reachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from tests.conftest import BACKENDS
from tests.serving import ServedBastion, served_for_backend

# Debian's build: Playwright cannot download its own here (make test installs this one).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class BrowsedPage:
    """A browser tab on the served Bastion, and what it did."""

    page: Page
    server: ServedBastion
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @property
    def foreign_requests(self) -> list[str]:
        """Requests to any host but the served Bastion (each was refused)."""
        own = urlsplit(self.server.base_url).netloc
        return [url for url in self.requests if urlsplit(url).netloc != own]


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBastion]:
    """`bastion serve` over the test run's database of each kind."""
    with served_for_backend(request, tmp_path_factory) as server:
        yield server


@pytest.fixture
def browser(served: ServedBastion) -> Iterator[Browser]:
    """Chromium for one test. Playwright's sync API keeps an event loop running while it is
    open, where no other code may start one (database set-up does): so it is opened after the
    server and closed with each test."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is required: apt-get install -y chromium (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browsed(browser: Browser, served: ServedBastion) -> Iterator[BrowsedPage]:
    """A fresh browser context (no cookies, no storage) whose page talks to ``served`` only."""
    context = browser.new_context(base_url=served.base_url)
    browsed = BrowsedPage(context.new_page(), served)
    own = urlsplit(served.base_url).netloc

    def only_the_served_host(route: Route) -> None:
        browsed.requests.append(route.request.url)
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            route.abort()

    def record_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            browsed.console_errors.append(message.text)

    context.route("**/*", only_the_served_host)
    browsed.page.on("console", record_error)
    try:
        yield browsed
    finally:
        context.close()
