"""The pages' pure rules: where a sign-in may return, form tokens, devices, brand colours."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.brand import READABLE, Brand, Palette, contrast, hex_of, parse_color
from bastion.core.i18n import speaking
from bastion.core.origins import safe_destination
from bastion.pages.model import Device, device_of, form_token, form_token_matches, usable_token
from bastion.pages.views import Views
from bastion.passwords.policy import PasswordPolicy

ALLOWED = ["https://app.example.com", "http://localhost:3000"]


@pytest.mark.parametrize(
    "url",
    [
        "/account",
        "/account/sessions?tab=1#top",
        "https://app.example.com",
        "https://app.example.com/welcome?x=1",
        "HTTPS://APP.EXAMPLE.COM/",
        "https://app.example.com:443/",
        "http://localhost:3000/callback",
    ],
)
def test_a_path_here_or_an_allowed_origin_is_a_destination(url: str) -> None:
    assert safe_destination(url, ALLOWED) == url


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https:evil.example",
        "https:/app.example.com",
        "https://app.example.com@evil.example",
        "https://user:pw@app.example.com/",
        "https://evil.example\\@app.example.com",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "http://localhost:3001",
        "javascript:alert(1)",
        "data:text/html,hi",
        "%2F%2Fevil.example",
        "/%0A/evil.example".replace("%0A", "\n"),
        "/\t/evil.example",
        " /account",
        "https://app.example.com:99999/",
        "https://ápp.example.com/",
        "/" + "a" * 3000,
    ],
)
def test_anything_else_is_no_destination(url: str | None) -> None:
    assert safe_destination(url, ALLOWED) is None


@given(st.text(max_size=60))
def test_a_destination_is_always_here_or_on_an_allowed_origin(url: str) -> None:
    found = safe_destination(url, ALLOWED)
    if found is not None:
        assert (
            found.startswith("/")
            and not found.startswith("//")
            or any(found.lower().startswith(origin) for origin in ALLOWED)
        )


def test_a_form_token_belongs_to_its_browser_and_its_key() -> None:
    key, other_key = b"k" * 32, b"o" * 32
    token = form_token(key, "browser-secret")
    assert form_token_matches(key, "browser-secret", token)
    assert not form_token_matches(key, "another-browser", token)
    assert not form_token_matches(other_key, "browser-secret", token)
    assert not form_token_matches(key, None, token)
    assert not form_token_matches(key, "browser-secret", None)
    assert not form_token_matches(key, "browser-secret", "")


def test_only_values_shaped_like_our_tokens_are_usable() -> None:
    assert usable_token("A" * 43) == "A" * 43
    for value in (None, "", "short", "a" * 200, "<script>alert(1)</script>", "abc def" * 5):
        assert usable_token(value) is None


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0 Safari/537.36 Edg/120.0",
            Device("Edge", "Windows"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            Device("Safari", "iOS"),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            Device("Firefox", "Linux"),
        ),
        ("python-httpx/0.27.0", Device("Python (httpx)", None)),
        (None, Device(None, None)),
    ],
)
def test_a_user_agent_is_named_as_a_person_recognises_it(agent: str | None, device: Device) -> None:
    assert device_of(agent) == device


@given(st.tuples(*[st.integers(0, 255)] * 3))
def test_every_brand_colour_yields_readable_text(rgb: tuple[int, int, int]) -> None:
    palette = Palette.of(hex_of(rgb))
    assert contrast(parse_color(palette.on_accent), rgb) >= READABLE
    assert contrast(parse_color(palette.accent_text), (255, 255, 255)) >= READABLE
    assert contrast(parse_color(palette.accent_text_dark), (24, 26, 32)) >= READABLE


def test_a_readable_brand_colour_is_kept_as_it_is() -> None:
    palette = Palette.of("#2952CC")
    assert palette.accent == palette.accent_text == "#2952cc"
    assert palette.on_accent == "#ffffff"


def test_a_page_kept_per_language_still_carries_each_browsers_own_form_token() -> None:
    views = Views(Brand("Acme", "#2952cc", "https://auth.example.com"))
    context = {"principal": None, "path": "/login", "policy": PasswordPolicy()}
    page = {"return_to": "", "email": "", "problem": None}
    first = views.render("login.html", "token-of-browser-one", **context, **page)
    second = views.render("login.html", "token-of-browser-two", **context, **page)
    assert 'name="csrf_token" value="token-of-browser-one"' in first
    assert first.replace("token-of-browser-one", "token-of-browser-two") == second
    with speaking("fr"):
        french = views.render("login.html", "token-of-browser-two", **context, **page)
    assert "Se connecter" in french and "token-of-browser-two" in french
