"""What every page shares: the cross-site checks of its forms, its headers and assets, the
language it speaks, the brand it wears (and the emails too), and where a sign-in returns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.core.brand import Palette
from tests.page_forms import SESSION_COOKIE, fill_in, form_to, page_sign_in, submit
from tests.support import (
    PUBLIC_URL,
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    html_of,
    make_settings,
    random_email,
    register,
    running_app,
    text_of,
)

PAGES = [
    "/login",
    "/register",
    "/forgot-password",
    "/verify-email",
    "/verify-email/resend",
    "/reset-password",
]
SIGNED_IN_PAGES = ["/account", "/account/sessions", "/account/activity"]
APP = "https://app.example.com"


async def test_a_form_post_from_another_origin_is_refused_and_changes_nothing(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "csrf") as (client, _, email):
        page = await client.get("/login")
        form = form_to(page, "/login")
        typed = {"email": email, "password": STRONG_PASSWORD}
        for origin in (
            "https://evil.example",
            "https://bastion.test:8443",  # another port of the same host
            "http://bastion.test",
            "null",
        ):
            refused = await submit(client, form, {"Origin": origin}, **typed)
            assert refused.status_code == 403, origin
            assert refused.headers["content-type"].startswith("text/html")
            assert "This form could not be accepted" in refused.text
            assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
        referer_only = await submit(client, form, {"Referer": "https://evil.example/x"}, **typed)
        assert referer_only.status_code == 403
        assert (await client.get("/account")).status_code == 303, "no session was started"


async def test_a_form_post_without_this_browsers_csrf_token_is_refused(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "csrf") as (client, _, email):
        page = await client.get("/login")
        form = form_to(page, "/login")
        typed = {"email": email, "password": STRONG_PASSWORD}
        assert (await submit(client, form, csrf_token="", **typed)).status_code == 403
        assert (await submit(client, form, csrf_token="forged", **typed)).status_code == 403
        client.cookies.clear()
        assert (await submit(client, form, **typed)).status_code == 403, "another browser's"
        assert (await client.get("/account")).status_code == 303


@pytest.mark.parametrize(
    "body",
    [b"", b"csrf_token=%FF%FE", b"\xff\xfe", b"a=1&" * 40, b"email=" + b"a" * 60000],
)
async def test_malformed_form_bodies_are_refused_as_forgeries_never_as_errors(
    client: httpx.AsyncClient, body: bytes
) -> None:
    for path in ("/login", "/register", "/reset-password", "/account/sessions", "/logout"):
        response = await client.post(
            path,
            content=body,
            headers={"Origin": PUBLIC_URL, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 403, path


async def test_every_page_has_a_strict_policy_and_no_inline_style_or_script(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "csp") as (client, _, email):
        anonymous = [await client.get(path) for path in PAGES]
        await page_sign_in(client, email, STRONG_PASSWORD)
        signed_in = [await client.get(path) for path in SIGNED_IN_PAGES]
    for page in anonymous + signed_in:
        assert page.status_code == 200, page.url
        policy = page.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "form-action 'self';" in policy
        assert page.headers["cache-control"] == "no-store"
        assert " style=" not in page.text and "<style" not in page.text
        assert re.findall(r"<script[^>]*>", page.text) == [
            f'<script type="module" src="/assets/pages.js?v={asset_version(page, "pages.js")}">'
        ]
        assert re.search(r'<html lang="en">', page.text)


def asset_version(page: httpx.Response, name: str) -> str:
    match = re.search(rf"/assets/{re.escape(name)}\?v=([0-9a-f]+)", page.text)
    assert match is not None
    return match.group(1)


async def test_the_form_action_policy_allows_the_origins_a_sign_in_may_return_to(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, allowed_redirect_origins=APP)
    async with running_app(settings) as (client, _):
        policy = (await client.get("/login")).headers["content-security-policy"]
        assert f"form-action 'self' {APP};" in policy


async def test_the_assets_are_served_by_bastion_and_cached_by_version(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/login")
    for name, media_type in (
        ("pages.css", "text/css"),
        ("pages.js", "text/javascript"),
        ("brand.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ):
        asset = await client.get(f"/assets/{name}?v={asset_version(page, name)}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media_type)
        again = await client.get(
            f"/assets/{name}", headers={"If-None-Match": asset.headers["etag"]}
        )
        assert again.status_code == 304
    assert (await client.get("/assets/../settings.py")).status_code == 404
    assert (await client.get("/assets/nothing.js")).status_code == 404


@pytest.mark.parametrize(
    ("accept_language", "lang", "heading"),
    [
        ("fr", "fr", "Se connecter"),
        ("fr-CA,fr;q=0.9,en;q=0.5", "fr", "Se connecter"),
        ("de-DE, en;q=0.8", "en", "Sign in"),
        ("de, fr;q=0.2", "fr", "Se connecter"),
        ("*", "en", "Sign in"),
        ("xx;q=abc, ,;;, fr;q=2", "en", "Sign in"),
    ],
)
async def test_pages_speak_the_language_the_browser_prefers(
    client: httpx.AsyncClient, accept_language: str, lang: str, heading: str
) -> None:
    page = await client.get("/login", headers={"Accept-Language": accept_language})
    assert f'<html lang="{lang}">' in page.text
    assert f"<h1>{heading}</h1>" in page.text
    assert page.headers["content-language"] == lang


async def test_the_default_locale_answers_a_browser_that_names_no_known_language(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(database_url, smtp.url, default_locale="fr")) as (
        client,
        _,
    ):
        for header in ({}, {"Accept-Language": "de"}):
            assert "<h1>Se connecter</h1>" in (await client.get("/login", headers=header)).text
        english = await client.get("/login", headers={"Accept-Language": "en-GB"})
        assert "<h1>Sign in</h1>" in english.text


async def test_a_french_sign_up_gets_french_pages_and_a_french_email(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("french")
    client.headers["Accept-Language"] = "fr-FR"
    weak = await fill_in(client, "/register", email=email, password="court")
    assert "Au moins 8 caractères" in weak.text and "Il y a un problème" in weak.text
    done = await fill_in(client, "/register", email=email, password=STRONG_PASSWORD)
    assert "Consultez votre boîte de réception" in done.text
    message = await smtp.mailbox.wait_for(email, "Confirmez votre adresse")
    assert "Ce lien expire dans 1 jour." in text_of(message)
    assert '<html lang="fr">' in html_of(message)


def brand_settings(tmp_path: Path) -> dict[str, Any]:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    return {
        "brand_name": "Acme Cloud",
        "brand_color": "#e8590c",
        "brand_logo_path": str(logo),
        "support_email": "help@acme.example",
    }


async def test_the_brand_dresses_the_pages(
    database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(database_url, smtp.url, **brand_settings(tmp_path))
    async with running_app(settings) as (client, _):
        page = await client.get("/login")
        assert "<title>Sign in · Acme Cloud</title>" in page.text
        assert "mailto:help@acme.example" in page.text
        logo = await client.get(f"/assets/brand-logo?v={asset_version(page, 'brand-logo')}")
        assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml"
        assert logo.headers["content-security-policy"] == "default-src 'none'"
        brand_css = await client.get("/assets/brand.css")
        palette = Palette.of("#e8590c")
        assert f"--accent: {palette.accent};" in brand_css.text
        assert f"--on-accent: {palette.on_accent};" in brand_css.text


async def test_the_brand_dresses_the_emails_and_their_text_keeps_the_link(
    database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(database_url, smtp.url, **brand_settings(tmp_path))
    async with running_app(settings) as (client, _):
        email = random_email("brand")
        assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
        message = await smtp.mailbox.wait_for(email, "confirm your email")
    html = html_of(message)
    assert "Acme Cloud" in html and "#e8590c" in html
    assert f"{PUBLIC_URL}/assets/brand-logo" in html
    assert "help@acme.example" in html
    text = text_of(message)
    assert f"Confirm my email: {PUBLIC_URL}/verify-email?token=" in text
    assert text.rstrip().endswith("Acme Cloud · Questions? Write to help@acme.example")


RETURN_TO_REFUSED = [
    "//evil.example/",
    "///evil.example",
    "https:evil.example",
    "https:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://app.example.com@evil.example/",
    "https://app.example.com\\@evil.example/",
    "https://evil.example\\@app.example.com",
    "https://app.example.com.evil.example/",
    "http://app.example.com/",
    "https://app.example.com:444/",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "/\t/evil.example",
    "https://app.example.com/\nLocation: https://evil.example",
    "https://évil.example/",
    "",
]


@pytest.mark.parametrize("return_to", RETURN_TO_REFUSED)
async def test_a_return_to_outside_the_allowed_origins_lands_on_the_account(
    database_url: str, smtp: SmtpServer, return_to: str
) -> None:
    async with app_with_user(database_url, smtp, "return", allowed_redirect_origins=APP) as (
        client,
        _,
        email,
    ):
        page = await client.get("/login", params={"return_to": return_to})
        assert "evil" not in form_to(page, "/login").fields.get("return_to", "")
        signed_in = await submit(
            client,
            form_to(page, "/login"),
            email=email,
            password=STRONG_PASSWORD,
            return_to=return_to,
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/account"


async def test_a_return_to_an_allowed_origin_or_a_page_of_bastion_is_followed(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "return", allowed_redirect_origins=APP) as (
        client,
        _,
        email,
    ):
        for return_to in (
            f"{APP}/welcome?from=bastion",
            "HTTPS://APP.example.com:443/x",
            "/account/sessions",
        ):
            client.cookies.clear()
            page = await client.get("/login", params={"return_to": return_to})
            signed_in = await submit(
                client, form_to(page, "/login"), email=email, password=STRONG_PASSWORD
            )
            assert signed_in.headers["location"] == return_to
        already = await client.get("/login", params={"return_to": f"{APP}/again"})
        assert already.headers["location"] == f"{APP}/again"


async def test_a_nul_in_a_form_field_is_refused_as_the_api_refuses_it(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "nul") as (client, _, email):
        for path, typed in (
            ("/login", {"email": email, "password": "Correct\x00-Horse-7"}),
            ("/register", {"email": "a\x00b@example.com", "password": STRONG_PASSWORD}),
            ("/forgot-password", {"email": f"{email}\x00"}),
        ):
            refused = await fill_in(client, path, **typed)
            assert refused.status_code == 422, path
            assert "This form could not be read" in refused.text
        assert (await client.get("/account")).status_code == 303
