"""The pages' templates and assets: the Jinja2 environment, the stylesheet made from the brand,
and the files served under /assets."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from bastion.core.brand import LOGO_PATH, Brand
from bastion.core.i18n import active_locale
from bastion.core.templating import environment
from bastion.passwords.policy import PasswordPolicy

STATIC = resources.files("bastion.pages") / "static"
CSS = "text/css; charset=utf-8"
STATIC_FILES = {"pages.css": CSS, "pages.js": "text/javascript; charset=utf-8"}
LOGO_ASSET = LOGO_PATH.rsplit("/", 1)[1]


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    version: str = field(init=False)  # of the content: its URL changes when it does

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", hashlib.sha256(self.content).hexdigest()[:12])


def brand_stylesheet(brand: Brand) -> bytes:
    """The brand's colours as the custom properties pages.css reads (no inline style anywhere:
    the Content-Security-Policy allows stylesheets from Bastion only)."""
    palette = brand.palette
    return (
        ":root {\n"
        f"  --accent: {palette.accent};\n"
        f"  --on-accent: {palette.on_accent};\n"
        f"  --accent-text: {palette.accent_text};\n"
        "}\n"
        "@media (prefers-color-scheme: dark) {\n"
        f"  :root {{ --accent-text: {palette.accent_text_dark}; }}\n"
        "}\n"
    ).encode()


def icon(brand: Brand) -> bytes:
    """A shield in the brand colour: the pages' favicon."""
    palette = brand.palette
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
        f'<path fill="{palette.accent}" d="M16 2 4 6.5v8.2C4 22.3 9.1 28.6 16 30c6.9-1.4 '
        '12-7.7 12-15.3V6.5z"/>'
        f'<path fill="{palette.on_accent}" d="m14.2 20.6-4.6-4.6 1.8-1.8 2.8 2.8 6.4-6.4 '
        '1.8 1.8z"/></svg>'
    ).encode()


class Views:
    """Renders the pages' templates in the request's language, with the brand and assets."""

    def __init__(self, brand: Brand, logo: Asset | None = None) -> None:
        self.assets: dict[str, Asset] = {
            name: Asset((STATIC / name).read_bytes(), media_type)
            for name, media_type in STATIC_FILES.items()
        }
        self.assets["brand.css"] = Asset(brand_stylesheet(brand), CSS)
        self.assets["icon.svg"] = Asset(icon(brand), "image/svg+xml")
        if logo is not None:
            self.assets[LOGO_ASSET] = logo
        self._urls = {name: f"/assets/{name}?v={a.version}" for name, a in self.assets.items()}
        # Looks like a form token, so it renders as one would, and nothing else looks like it.
        self._token_stand_in = f"csrf{secrets.token_hex(20)}"
        self._anonymous = functools.lru_cache(maxsize=256)(self._render_anonymous)
        self._env = environment("bastion.pages")
        self._env.globals.update(
            brand=brand,
            asset=self.asset_url,
            logo=self.asset_url(LOGO_ASSET) if logo is not None else None,
        )

    def asset_url(self, name: str) -> str:
        """The asset's URL, versioned by its content so browsers may cache it long."""
        return self._urls[name]

    def render(self, template: str, csrf_token: str, **context: Any) -> str:
        """The page in the active language. A page whose context is all plain values (a page
        for anyone, not one showing a signed-in user) is rendered once per language and kept,
        with a stand-in where each form's token goes."""
        locale = active_locale()
        if context.get("principal") is None:
            try:
                key = (template, locale, tuple(sorted(context.items())))
                page = self._anonymous(key)
            except TypeError:  # a list or dict in the context: rendered each time
                pass
            else:
                return page.replace(self._token_stand_in, csrf_token)
        template_ = self._env.get_template(template)
        return template_.render(locale=locale, csrf_token=csrf_token, **context)

    def _render_anonymous(self, key: tuple[str, str, tuple[tuple[str, Any], ...]]) -> str:
        template, locale, context = key
        return self._env.get_template(template).render(
            locale=locale, csrf_token=self._token_stand_in, **dict(context)
        )


@dataclass(frozen=True, slots=True)
class Pages:
    """What the page handlers need besides the use cases: built once by the composition root."""

    views: Views
    form_key: bytes  # signs the forms' csrf_token
    secure_cookies: bool
    public_origin: str
    redirect_origins: tuple[str, ...]
    policy: PasswordPolicy
    verification_link_seconds: int
    reset_link_seconds: int
    email_change_link_seconds: int
    invite_link_seconds: int

    @property
    def content_security_policy(self) -> str:
        """No inline script or style anywhere; forms may post (and be redirected) only to
        Bastion and the origins a sign-in may return to."""
        targets = " ".join(["'self'", *self.redirect_origins])
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self'; form-action {targets}; base-uri 'none'; "
            "frame-ancestors 'none'"
        )
