"""The pages' rules, as pure functions: form tokens, and what a session's user agent says."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

# A token as core.secrets.new_token makes it: the only thing a link or a cookie may carry.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def usable_token(value: str | None) -> str | None:
    """``value`` if it has the shape of a token we issue, else None (never rendered or sent)."""
    return value if value is not None and TOKEN.fullmatch(value) else None


def form_token(key: bytes, browser_secret: str) -> str:
    """The ``csrf_token`` a form carries: a MAC of the browser's own CSRF cookie, which a page
    on another site can neither read nor compute (signed double-submit)."""
    mac = hmac.new(key, browser_secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def form_token_matches(key: bytes, browser_secret: str | None, submitted: str | None) -> bool:
    if not browser_secret or not submitted:
        return False
    return hmac.compare_digest(form_token(key, browser_secret), submitted)


@dataclass(frozen=True, slots=True)
class Device:
    """What a user agent says of itself, as far as a person recognises it; None is unknown."""

    browser: str | None
    system: str | None


# Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("HeadlessChrome/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx/", "Python (httpx)"),
    ("python-requests/", "Python (requests)"),
)
_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)


def device_of(user_agent: str | None) -> Device:
    agent = user_agent or ""
    browser = next((name for mark, name in _BROWSERS if mark in agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in agent), None)
    return Device(browser, system)
