"""Settings are validated once, at start-up, and every problem is reported in one message."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bastion.settings import Settings, SettingsError, load_settings

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
    ["auth.example.com", "ftp://auth.example.com", "https://", "https://a.example/?next=x", ""],
)
def test_the_public_url_must_be_an_absolute_http_url(url: str) -> None:
    assert named(problems(public_url=url)) == ["BASTION_PUBLIC_URL"]


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
