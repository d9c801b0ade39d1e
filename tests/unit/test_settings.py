"""Settings are validated once, at start-up, and every problem is reported in one message."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.accounts.model import Role
from bastion.http.client_ip import parse_networks
from bastion.settings import ROLE_NAMES, Settings, SettingsError, load_settings

SECRET = "a-production-secret-that-is-long-enough-0123456789"
PRODUCTION = {
    "env": "production",
    "secret_key": SECRET,
    "public_url": "https://auth.example.com",
    "smtp_url": "smtps://mailer:pw@smtp.example.com:465",
}
NUMERIC_FIELDS = [
    name for name, field in Settings.model_fields.items() if field.annotation in (int, float)
]


@pytest.fixture(autouse=True)
def no_bastion_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the values a test passes count: no BASTION_* variable from the shell."""
    for name in os.environ:
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)


def problems(**values: Any) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None, **values)
    message = str(raised.value)
    assert message.startswith("Invalid settings:\n")
    return [line.removeprefix("  - ") for line in message.splitlines()[1:]]


def named(found: list[str]) -> list[str]:
    return sorted(problem.split(":", 1)[0] for problem in found)


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = load_settings(_env_file=None, **PRODUCTION)
    assert settings.is_production and settings.cookie_secure


def test_production_refuses_every_development_default_in_one_message() -> None:
    found = problems(env="production", cookie_secure=False)
    assert named(found) == [
        "BASTION_COOKIE_SECURE",
        "BASTION_PUBLIC_URL",
        "BASTION_SECRET_KEY",
        "BASTION_SMTP_URL",
    ]


def test_production_refuses_a_short_secret() -> None:
    assert named(problems(**{**PRODUCTION, "secret_key": "too-short"})) == ["BASTION_SECRET_KEY"]


def test_production_refuses_webhooks_to_private_addresses() -> None:
    found = problems(**{**PRODUCTION, "webhook_allow_private": True})
    assert named(found) == ["BASTION_WEBHOOK_ALLOW_PRIVATE"]
    assert load_settings(_env_file=None, webhook_allow_private=True).webhook_allow_private


def test_invalid_values_and_production_problems_are_listed_together() -> None:
    found = problems(
        env="production",
        public_url="auth.example.com",
        access_token_ttl=0,
        trusted_proxies="10.0.0.0/8, not-a-network",
        log_level="loud",
        redis_url="http://cache:6379",
        mail_from="nobody",
    )
    assert named(found) == [
        "BASTION_ACCESS_TOKEN_TTL",
        "BASTION_LOG_LEVEL",
        "BASTION_MAIL_FROM",
        "BASTION_PUBLIC_URL",  # reported once, as invalid, not again as "not https"
        "BASTION_REDIS_URL",
        "BASTION_SECRET_KEY",
        "BASTION_SMTP_URL",
        "BASTION_TRUSTED_PROXIES",
    ]


@pytest.mark.parametrize("name", NUMERIC_FIELDS)
def test_every_duration_limit_and_cost_is_bounded_on_both_sides(name: str) -> None:
    assert named(problems(**{name: -1})) == [f"BASTION_{name.upper()}"]
    assert named(problems(**{name: 10**12})) == [f"BASTION_{name.upper()}"]


@pytest.mark.parametrize(
    "url",
    [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://a.example/?next=x",
        "",
        "https://user:secret@auth.example.com",
        "https://auth.example.com:99999",
    ],
)
def test_the_public_url_must_be_an_absolute_http_url(url: str) -> None:
    assert named(problems(public_url=url)) == ["BASTION_PUBLIC_URL"]


@pytest.mark.parametrize(
    "origin",
    [
        "app.example.com",
        "https://app.example.com/app",
        "https://app.example.com?x=1",
        "https://user@app.example.com",
        "https://app.example.com:http",
    ],
)
def test_an_allowed_origin_must_be_a_bare_origin(origin: str) -> None:
    assert named(problems(allowed_origins=origin)) == ["BASTION_ALLOWED_ORIGINS"]


def test_lists_are_read_from_comma_separated_values() -> None:
    settings = load_settings(
        _env_file=None,
        allowed_origins="https://app.example.com, https://admin.example.com",
        trusted_proxies="10.0.0.0/8,192.0.2.1",
        log_level="WARNING",
    )
    assert settings.allowed_origins == ["https://app.example.com", "https://admin.example.com"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    assert settings.log_level == "warning"


def test_second_factor_settings_have_the_documented_defaults() -> None:
    settings = load_settings(_env_file=None, public_url="https://auth.example.com/base")
    assert settings.mfa_required_roles == ["admin"]
    assert settings.reauth_max_age == 900
    assert settings.mfa_token_ttl == 300
    assert settings.rp_id == "auth.example.com"
    assert settings.webauthn_rp_name == "Bastion"
    assert settings.webauthn_allowed_origins == ["https://auth.example.com"]


def test_an_empty_mfa_required_roles_variable_means_no_role_requires_a_second_factor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_MFA_REQUIRED_ROLES", "")
    assert load_settings(_env_file=None).mfa_required_roles == []
    monkeypatch.setenv("BASTION_MFA_REQUIRED_ROLES", "Admin, manager,admin")
    assert load_settings(_env_file=None).mfa_required_roles == ["admin", "manager"]


def test_the_role_names_settings_accept_are_the_roles_bastion_has() -> None:
    assert set(ROLE_NAMES) == {role.value for role in Role}
    assert named(problems(mfa_required_roles="admin,superuser")) == ["BASTION_MFA_REQUIRED_ROLES"]


def test_webauthn_origins_are_added_to_the_public_url_origin_once() -> None:
    settings = load_settings(
        _env_file=None,
        public_url="https://auth.example.com",
        webauthn_origins="https://app.example.com, https://auth.example.com",
    )
    assert settings.webauthn_allowed_origins == [
        "https://auth.example.com",
        "https://app.example.com",
    ]


@pytest.mark.parametrize(
    "rp_id",
    ["https://example.com", "example.com:443", "example.com/path", "exa mple.com", "-a.com"],
)
def test_the_rp_id_must_be_a_bare_domain(rp_id: str) -> None:
    assert named(problems(webauthn_rp_id=rp_id)) == ["BASTION_WEBAUTHN_RP_ID"]


def test_the_rp_id_is_stored_in_lower_case() -> None:
    assert load_settings(_env_file=None, webauthn_rp_id=" Example.COM ").rp_id == "example.com"


def test_development_on_localhost_uses_localhost_as_the_rp_id() -> None:
    settings = load_settings(_env_file=None, public_url="http://localhost:8000")
    assert settings.rp_id == "localhost"
    assert settings.webauthn_allowed_origins == ["http://localhost:8000"]


def test_production_accepts_a_parent_domain_of_every_origin_as_the_rp_id() -> None:
    settings = load_settings(
        _env_file=None,
        **PRODUCTION,
        webauthn_rp_id="example.com",
        webauthn_origins="https://app.example.com,https://example.com",
    )
    assert settings.rp_id == "example.com"


@pytest.mark.parametrize(
    ("rp_id", "origins"),
    [
        ("other.com", ""),  # not a suffix of PUBLIC_URL's host
        ("auth.example.com", "https://app.example.com"),  # a sibling, not a parent
        ("ample.com", ""),  # a string suffix is not a domain suffix
        ("com", ""),  # a top-level name
    ],
)
def test_production_refuses_an_rp_id_that_is_not_a_suffix_of_every_origin_host(
    rp_id: str, origins: str
) -> None:
    found = problems(**PRODUCTION, webauthn_rp_id=rp_id, webauthn_origins=origins)
    assert named(found) == ["BASTION_WEBAUTHN_RP_ID"]


def test_production_refuses_an_ip_address_as_the_rp_id() -> None:
    found = problems(**{**PRODUCTION, "public_url": "https://192.0.2.10"})
    assert named(found) == ["BASTION_WEBAUTHN_RP_ID"]
    assert "IP address" in found[0]


# Property tests: whatever text an operator sets, start-up either refuses it with one SettingsError
# or keeps a value of the documented shape.

DEFAULT_PORTS = {"http": 80, "https": 443}
host_names = st.from_regex(r"[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,15}){0,3}", fullmatch=True)


def loaded(**values: Any) -> Settings | None:
    try:
        return load_settings(_env_file=None, **values)
    except SettingsError:
        return None


@st.composite
def written_origins(draw: st.DrawFn) -> tuple[str, str]:
    """An origin as an operator might write it, and as a browser sends it in `Origin`."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(host_names)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    written_port = "" if port is None else f":{port}"
    served_port = "" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}"
    case = draw(st.sampled_from([str.lower, str.upper, str.title]))
    slash = draw(st.sampled_from(["", "/"]))
    return f"{case(scheme)}://{case(host)}{written_port}{slash}", f"{scheme}://{host}{served_port}"


@given(st.lists(written_origins(), min_size=1, max_size=4), st.sampled_from([",", ", ", " , "]))
def test_an_allowed_origin_is_kept_as_browsers_send_it(
    origins: list[tuple[str, str]], separator: str
) -> None:
    settings = load_settings(
        _env_file=None, allowed_origins=separator.join(written for written, _ in origins)
    )
    assert settings.allowed_origins == [served for _, served in origins]


@given(written_origins())
def test_the_public_origin_is_the_public_url_as_browsers_send_it(origin: tuple[str, str]) -> None:
    written, served = origin
    settings = load_settings(_env_file=None, public_url=f"{written.rstrip('/')}/auth/")
    assert settings.public_origin == served
    assert settings.public_url == f"{written.rstrip('/')}/auth"


@given(st.text(max_size=80))
def test_any_allowed_origins_text_is_refused_or_kept_as_bare_origins(text: str) -> None:
    settings = loaded(allowed_origins=text)
    for origin in settings.allowed_origins if settings else []:
        parts = urlsplit(origin)
        assert parts.scheme in DEFAULT_PORTS and parts.hostname
        assert f"{parts.scheme}://{parts.netloc}" == origin
        assert "@" not in parts.netloc


@given(st.one_of(st.text(max_size=80), written_origins().map(lambda o: o[0] + "x?y#z")))
def test_any_public_url_is_refused_or_builds_links_on_its_own_origin(text: str) -> None:
    settings = loaded(public_url=text)
    if settings is None:
        return
    link = urlsplit(f"{settings.public_url}/reset-password?token=t")
    assert link.scheme in DEFAULT_PORTS and link.username is None and link.password is None
    assert link.path.endswith("/reset-password") and link.query == "token=t" and not link.fragment
    assert settings.public_origin.startswith(f"{link.scheme}://")


networks = st.one_of(
    st.ip_addresses(v=4).flatmap(lambda a: st.integers(0, 32).map(lambda n: f"{a}/{n}")),
    st.ip_addresses(v=6).flatmap(lambda a: st.integers(0, 128).map(lambda n: f"{a}/{n}")),
    st.ip_addresses().map(str),
)


@given(st.lists(networks, min_size=1, max_size=5), st.sampled_from([",", ", ", " ,  "]))
def test_trusted_proxies_are_read_as_the_networks_written(
    written: list[str], separator: str
) -> None:
    settings = load_settings(_env_file=None, trusted_proxies=separator.join(written))
    assert parse_networks(settings.trusted_proxies) == parse_networks(written)


@given(st.text(max_size=80))
def test_any_trusted_proxies_text_is_refused_or_kept_as_networks(text: str) -> None:
    settings = loaded(trusted_proxies=text)
    if settings is not None:
        assert len(parse_networks(settings.trusted_proxies)) == len(settings.trusted_proxies)


def test_the_branding_and_page_settings_have_the_documented_defaults() -> None:
    settings = load_settings(_env_file=None)
    assert settings.brand_name == "Bastion"
    assert settings.brand_color == "#2952cc"
    assert settings.brand_logo_path is None and settings.support_email is None
    assert settings.allowed_redirect_origins == []
    assert settings.default_locale == "en"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("brand_color", "blue"),
        ("brand_color", "#12345"),
        ("brand_color", "#gggggg"),
        ("brand_name", ""),
        ("brand_name", "Two\nlines"),
        ("brand_name", "x" * 65),
        ("brand_logo_path", "/no/such/logo.png"),
        ("brand_logo_path", "/etc/hostname"),
        ("support_email", "not an address"),
        ("support_email", "a@b"),
        ("support_email", "Support <help@example.com>"),
        ("allowed_redirect_origins", "https://app.example.com/path"),
        ("allowed_redirect_origins", "app.example.com"),
        ("default_locale", "de"),
        ("default_locale", "../../etc"),
    ],
)
def test_invalid_branding_and_page_settings_are_named(name: str, value: str) -> None:
    assert named(problems(**{name: value})) == [f"BASTION_{name.upper()}"]


def test_the_page_settings_are_read_as_written_or_normalised() -> None:
    settings = load_settings(
        _env_file=None,
        brand_color="#ABC",
        brand_logo_path="",
        support_email=" help@example.com ",
        allowed_redirect_origins="HTTPS://App.Example.com:443, http://localhost:3000",
        default_locale="fr-CA",
    )
    assert settings.brand_color == "#abc"
    assert settings.brand_logo_path is None
    assert settings.support_email == "help@example.com"
    assert settings.allowed_redirect_origins == ["https://app.example.com", "http://localhost:3000"]
    assert settings.default_locale == "fr"


def test_a_logo_too_large_to_serve_is_refused(tmp_path: Any) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG" + b"\0" * (256 * 1024))
    assert named(problems(brand_logo_path=str(logo))) == ["BASTION_BRAND_LOGO_PATH"]
