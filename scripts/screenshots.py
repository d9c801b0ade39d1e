"""Screenshots of the hosted pages for docs/pages/: each main page at 1280 and 375 px wide, in
light and dark mode, from a real `bastion serve` on localhost over a throwaway SQLite database,
in Debian's Chromium (the one the browser tests drive).

    .venv/bin/python scripts/screenshots.py [--output docs/pages]

Mail goes to an SMTP server of the script's own, which is how it opens the emailed links.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from tests.serving import served_bastion  # noqa: E402
from tests.support import Mailbox, SmtpServer, migrated_sqlite_database, text_of  # noqa: E402

EMAIL = "ada@example.com"
PASSWORD = "Quiet-Harbor-42"  # noqa: S105 - a made-up user of the screenshots
WIDTHS = {1280: 860, 375: 812}


def link_in(mailbox: Mailbox, path: str) -> str:
    pattern = re.compile(rf"https?://\S+{re.escape(path)}\?token=[A-Za-z0-9_-]+")
    for _ in range(300):
        for message in reversed(mailbox.received(EMAIL)):
            found = pattern.search(text_of(message))
            if found:
                return found.group(0)
        time.sleep(0.05)
    raise SystemExit(f"no {path} link was mailed")


def sign_in(page: Page, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill(password)
    page.locator("form[action='/login'] button[type=submit]").click()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "pages")
    output = parser.parse_args().output
    output.mkdir(parents=True, exist_ok=True)
    smtp = SmtpServer()
    smtp.start()
    scratch = Path(tempfile.mkdtemp(prefix="bastion-screens-"))
    database = migrated_sqlite_database(scratch)
    try:
        with (
            served_bastion(
                database, scratch / "serve.log", host="localhost", smtp_url=smtp.url
            ) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            context = browser.new_context(base_url=server.base_url, locale="en-GB")
            page = context.new_page()
            page.goto("/register")
            page.locator("#email").fill(EMAIL)
            page.locator("#password").fill(PASSWORD)
            page.locator("form[action='/register'] button[type=submit]").click()
            page.goto(link_in(smtp.mailbox, "/verify-email"))
            page.locator("form[action='/verify-email'] button[type=submit]").click()
            other = browser.new_context(base_url=server.base_url, locale="en-GB")
            elsewhere = other.new_page()
            sign_in(elsewhere)  # a password-only session: it will have to confirm it's you
            sign_in(page, "Wrong-Horse-1")
            sign_in(page)

            def refused_sign_up() -> None:
                page.goto("/register")
                page.locator("#email").fill("ada@example")
                page.locator("#password").fill("password")
                page.locator("form[action='/register'] button[type=submit]").click()

            pages: dict[str, Callable[[], None]] = {
                "account": lambda: page.goto("/account"),
                "sessions": lambda: page.goto("/account/sessions"),
                "activity": lambda: page.goto("/account/activity"),
                "data": lambda: page.goto("/account/data"),
            }
            for name, visit in pages.items():
                visit()
                capture(page, output, name)
            second_factor(page, elsewhere, output)
            page.locator("form[action='/logout'] button").click()
            sign_in(page)
            capture(page, output, "login-mfa")
            page.context.clear_cookies()
            anonymous = {
                "login": lambda: page.goto("/login"),
                "register": lambda: page.goto("/register"),
                "register-refused": refused_sign_up,
                "forgot-password": lambda: page.goto("/forgot-password"),
            }
            for name, visit in anonymous.items():
                visit()
                capture(page, output, name)
            page.goto("/forgot-password")
            page.locator("#email").fill(EMAIL)
            page.locator("form[action='/forgot-password'] button[type=submit]").click()
            page.goto(link_in(smtp.mailbox, "/reset-password"))
            capture(page, output, "reset-password")
            french = browser.new_context(base_url=server.base_url, locale="fr-FR").new_page()
            french.goto("/login")
            capture(french, output, "login-fr")
            browser.close()
    finally:
        smtp.stop()
    print(f"screenshots written to {output}")  # noqa: T201 - a script's report


def second_factor(page: Page, elsewhere: Page, output: Path) -> None:
    """The security page, an authenticator app set up, the recovery codes, and the step that
    asks a session older than the second factor to confirm it's you."""
    page.goto("/account/security")
    capture(page, output, "security")
    page.locator("form:has(input[name=intent][value=totp]) button[type=submit]").click()
    capture(page, output, "totp-setup")
    secret = page.locator("[data-totp-secret]").inner_text().strip()
    page.locator("#code").fill(pyotp.TOTP(secret).now())
    page.locator("form[action='/account/security'] button[type=submit]").click()
    capture(page, output, "recovery-codes")
    page.goto("/account/security")
    capture(page, output, "security-on")
    elsewhere.goto("/account/security")
    elsewhere.locator("form:has(input[name=intent][value=regenerate]) button").click()
    capture(elsewhere, output, "confirm")


def capture(page: Page, output: Path, name: str) -> None:
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=output / f"{name}-{width}-{scheme}.png", full_page=width < 1000)


if __name__ == "__main__":
    main()
