"""Every string of the pages and emails has a translation in every catalog, and the request's
language is the one its browser prefers among them."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bastion.core import i18n
from bastion.core.i18n import available_locales, negotiate, speaking

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "gettext_noop": None}
Message = str | tuple[str, ...]


def extracted() -> set[Message]:
    """The messages the code and templates use, extracted as `make translations` does."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: set[Message] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def test_english_and_french_have_catalogs() -> None:
    assert available_locales() == ("en", "fr")


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_catalog_has_every_message_and_no_other(locale: str) -> None:
    wanted = extracted()
    assert len(wanted) > 150
    with (ROOT / f"src/bastion/locales/{locale}/LC_MESSAGES/messages.po").open("rb") as source:
        found = read_po(source, locale=locale)
    ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in found if m.id}
    assert wanted - ids == set(), "run `make translations` and translate what it adds"
    assert ids - wanted == set(), "run `make translations` to drop what the code no longer says"
    untranslated = [
        m.id
        for m in found
        if m.id
        and locale != i18n.SOURCE_LOCALE
        and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    assert untranslated == []
    assert [error for m, errors in found.check() for error in errors] == []


def test_the_template_is_up_to_date() -> None:
    with (ROOT / "src/bastion/locales/messages.pot").open("rb") as source:
        template = read_po(source)
    ids = {m.id if isinstance(m.id, str) else tuple(m.id) for m in template if m.id}
    assert ids == extracted()


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "en"),
        ("", "en"),
        ("fr", "fr"),
        ("FR-be", "fr"),
        ("fr_CA", "fr"),
        ("en-US,fr;q=0.9", "en"),
        ("de,fr;q=0.5,en;q=0.4", "fr"),
        ("fr;q=0, en;q=0.1", "en"),
        ("fr;q=nan", "en"),
        ("fr;q=inf", "en"),
        ("*;q=0.5", "en"),
        ("de", "en"),
        ("," * 10_000 + "fr", "en"),
        ("\x00\xff;q=;;", "en"),
    ],
)
def test_the_browser_preference_picks_a_catalog_or_the_default(
    header: str | None, locale: str
) -> None:
    assert negotiate(header, "en") == locale


def test_a_translation_follows_the_locale_in_use() -> None:
    with speaking("fr"):
        assert i18n.gettext("Sign in") == "Se connecter"
        assert i18n.ngettext("%(num)d day", "%(num)d days", 2) % {"num": 2} == "2 jours"
        assert i18n.ngettext("%(num)d day", "%(num)d days", 1) % {"num": 1} == "1 jour"
    assert i18n.gettext("Sign in") == "Sign in"
