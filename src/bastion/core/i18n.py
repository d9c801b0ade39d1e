"""Translations of what people read (pages and emails), from gettext catalogs.

The catalogs are the ``.po`` files under ``bastion/locales/<locale>/LC_MESSAGES``, compiled in
memory the first time a locale is used: there is no build step and no ``.mo`` file to forget.
The locale of the work in hand is a context variable, as in Django or Flask-Babel: the HTTP
layer sets it once per request from ``Accept-Language``, and everything that request renders or
mails (in whichever feature) speaks that language without passing it along.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from importlib import resources

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

SOURCE_LOCALE = "en"  # the language the messages are written in
DOMAIN = "messages"
LOCALES = resources.files("bastion") / "locales"
MAX_HEADER_LENGTH = 256  # of an Accept-Language header worth reading
MAX_PREFERENCES = 16

_locale: ContextVar[str] = ContextVar("bastion_locale", default=SOURCE_LOCALE)


@functools.cache
def available_locales() -> tuple[str, ...]:
    """The locales that have a catalog, the source language first."""
    found = {
        entry.name
        for entry in LOCALES.iterdir()
        if (entry / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    }
    return (SOURCE_LOCALE, *sorted(found - {SOURCE_LOCALE}))


@functools.cache
def translations(locale: str) -> Translations:
    """The compiled catalog of ``locale``; untranslated messages fall back to the source."""
    with (LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        catalog = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def active_locale() -> str:
    return _locale.get()


def use_locale(locale: str) -> None:
    """Make ``locale`` the language of the rest of the current task (one request)."""
    _locale.set(locale)


@contextmanager
def speaking(locale: str) -> Iterator[None]:
    """Use ``locale`` inside the block only (the mail worker renders each message so)."""
    token = _locale.set(locale)
    try:
        yield
    finally:
        _locale.reset(token)


def gettext(message: str) -> str:
    return translations(_locale.get()).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return translations(_locale.get()).ngettext(singular, plural, count)


def gettext_noop(message: str) -> str:
    """Marks a message for the catalogs where it is defined; it is translated where shown."""
    return message


def format_moment(moment: datetime) -> str:
    """A date and time as the active locale writes it, in UTC (the pages' script shows it in
    the reader's own time zone)."""
    return format_datetime(moment.astimezone(UTC), "medium", tzinfo=UTC, locale=_locale.get())


def negotiate(accept_language: str | None, default: str) -> str:
    """The available locale a browser's ``Accept-Language`` prefers most, else ``default``.

    A language tag matches a catalog of the same tag or of its language alone (``fr-CA`` reads
    ``fr``). Malformed parts of the header are skipped, never an error.
    """
    if not accept_language:
        return default
    return _negotiate(accept_language[:MAX_HEADER_LENGTH], default)


@functools.lru_cache(maxsize=512)
def _negotiate(accept_language: str, default: str) -> str:
    available = available_locales()
    preferences: list[tuple[float, int, str]] = []
    parts = accept_language.split(",")[:MAX_PREFERENCES]
    for position, part in enumerate(parts):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        if not 0 < quality <= 1 or not tag:
            continue
        preferences.append((-quality, position, tag.strip().lower().replace("_", "-")))
    for _, _, tag in sorted(preferences):
        language = tag.split("-")[0]
        if tag == "*":
            return default
        for candidate in (tag.replace("-", "_"), language):
            if candidate in available:
                return candidate
    return default
