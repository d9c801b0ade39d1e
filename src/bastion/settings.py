"""Every setting Bastion reads, validated once at start-up.

Each field is read from the environment variable ``BASTION_<FIELD>`` (or a ``.env`` file).
Invalid or unsafe combinations stop the process with one message listing every problem.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion.core.brand import LOGO_TYPES, MAX_LOGO_BYTES, parse_color
from bastion.core.i18n import SOURCE_LOCALE, available_locales
from bastion.core.origins import DEFAULT_PORTS, browser_origin

MIN_SECRET_LENGTH = 32
DAY = 86400


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


MAX_DAYS = 36_500
Seconds = Annotated[int, Field(ge=1, le=400 * DAY)]
Count = Annotated[int, Field(ge=1, le=100_000_000)]
# A number of days, where 0 turns the rule off.
DaysOrOff = Annotated[int, Field(ge=0, le=MAX_DAYS)]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Mirrors accounts.model.Role: settings are read before any feature is imported.
ROLE_NAMES = ("admin", "manager", "user", "guest")
# A hostname as WebAuthn takes it for an RP ID: lowercase labels, no scheme, port or path.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BASTION_", env_file=".env", extra="ignore", frozen=True
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///./bastion.db"
    redis_url: str | None = None
    redis_key_prefix: Annotated[str, Field(max_length=64)] = "bastion:"
    public_url: str = "http://127.0.0.1:8000"
    issuer: str | None = None
    audience: Annotated[str, Field(min_length=1, max_length=256)] = "bastion"
    secret_key: str | None = None
    secret_key_file: Path = Path(".bastion_secret")
    auto_migrate: bool = True

    smtp_url: str | None = None
    mail_from: str = "Bastion <no-reply@localhost>"
    smtp_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0

    access_token_ttl: Seconds = DAY
    session_ttl: Seconds = DAY
    remember_me_ttl: Seconds = 30 * DAY
    # A client that never got the answer to its refresh may present the same token once more
    # within this many seconds (0: never), instead of being taken for a thief.
    refresh_retry_seconds: Annotated[int, Field(ge=0, le=60)] = 10
    verification_token_ttl: Seconds = DAY
    reset_token_ttl: Seconds = 3600
    email_change_token_ttl: Seconds = 3600
    invite_token_ttl: Seconds = 7 * DAY
    cookie_secure: bool = True
    allowed_origins: Annotated[list[str], NoDecode] = []
    # How long a worker may trust its cached view of a session; revocations done in another
    # process become visible within this delay.
    session_cache_seconds: Annotated[float, Field(ge=0, le=1)] = 0.5

    password_min_length: Annotated[int, Field(ge=1, le=256)] = 8
    password_require_uppercase: bool = True
    password_require_lowercase: bool = True
    password_require_digit: bool = True
    argon2_time_cost: Annotated[int, Field(ge=1, le=20)] = 2
    argon2_memory_cost: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 19456
    argon2_parallelism: Annotated[int, Field(ge=1, le=16)] = 1
    hash_threads: Annotated[int, Field(ge=1, le=64)] = max(os.cpu_count() or 1, 1)

    login_max_failures: Count = 5
    login_failure_window: Seconds = 600
    login_block_seconds: Seconds = 1800
    account_max_failures: Count = 50
    account_block_seconds: Seconds = 900
    register_per_hour: Count = 5
    forgot_password_per_hour: Count = 3
    verification_resend_per_hour: Count = 3
    rate_limit_per_minute: Count = 100
    user_rate_limit_per_minute: Count = 300
    trusted_proxies: Annotated[list[str], NoDecode] = []

    outbox_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    outbox_max_attempts: Annotated[int, Field(ge=1, le=100)] = 12

    audit_retention_days: DaysOrOff = 90
    session_retention_days: DaysOrOff = 30
    # Let webhooks call loopback, private and link-local addresses (development only).
    webhook_allow_private: bool = False
    # How long services may resume the event stream (GET /api/v1/events) from an event.
    event_retention: Seconds = 7 * DAY
    purge_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    signing_key_rotation_days: DaysOrOff = 90
    # How often each instance runs a round of the background tasks (purge, key rotation).
    maintenance_interval_seconds: Annotated[float, Field(gt=0, le=DAY)] = 3600.0
    log_json: bool | None = None
    log_level: str = "info"
    max_body_bytes: Annotated[int, Field(ge=1024, le=10 * 1024 * 1024)] = 64 * 1024
    # Seconds a request body may take to arrive in all; a slower one is answered 408.
    body_read_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0

    mfa_required_roles: Annotated[list[str], NoDecode] = ["admin"]
    reauth_max_age: Seconds = 900
    mfa_token_ttl: Annotated[int, Field(ge=10, le=3600)] = 300
    webauthn_rp_id: str | None = None
    webauthn_rp_name: Annotated[str, Field(min_length=1, max_length=64)] = "Bastion"
    webauthn_origins: Annotated[list[str], NoDecode] = []

    brand_name: Annotated[str, Field(min_length=1, max_length=64)] = "Bastion"
    brand_color: str = "#2952cc"
    brand_logo_path: Path | None = None
    support_email: str | None = None
    allowed_redirect_origins: Annotated[list[str], NoDecode] = []
    default_locale: str = SOURCE_LOCALE

    @field_validator(
        "allowed_origins",
        "trusted_proxies",
        "mfa_required_roles",
        "webauthn_origins",
        "allowed_redirect_origins",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_is_known(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://auth.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not contain a query or fragment")
        if parts.username is not None:
            raise ValueError("must not contain a user name or password: links are built from it")
        browser_origin(parts)  # a port that is no port is refused here
        return value.rstrip("/")

    @field_validator("allowed_origins", "webauthn_origins", "allowed_redirect_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in DEFAULT_PORTS
                or not parts.hostname
                or parts.username is not None
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
            origins.append(browser_origin(parts))
        return origins

    @field_validator("brand_name")
    @classmethod
    def _brand_name_is_one_line(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line of visible text")
        return value.strip()

    @field_validator("brand_color")
    @classmethod
    def _brand_color_is_a_color(cls, value: str) -> str:
        parse_color(value)  # ValueError names the expected form
        return value.lower()

    @field_validator("brand_logo_path", mode="before")
    @classmethod
    def _no_logo_when_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("brand_logo_path")
    @classmethod
    def _logo_is_a_small_image(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if value.suffix.lower() not in LOGO_TYPES:
            raise ValueError(f"must be an image file ({', '.join(sorted(LOGO_TYPES))})")
        try:
            size = value.stat().st_size
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        if not value.is_file() or size > MAX_LOGO_BYTES:
            raise ValueError(f"must be a file of at most {MAX_LOGO_BYTES // 1024} KiB")
        return value

    @field_validator("support_email")
    @classmethod
    def _support_email_is_an_address(cls, value: str | None) -> str | None:
        address = (value or "").strip()
        if not address:
            return None
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or any(c in address for c in ' <>"\\,;'):
            raise ValueError("must be an address such as support@example.com")
        return address

    @field_validator("default_locale")
    @classmethod
    def _locale_has_a_catalog(cls, value: str) -> str:
        locale = value.strip().replace("-", "_")
        known = available_locales()
        for candidate in (locale, locale.lower(), locale.split("_")[0].lower()):
            if candidate in known:
                return candidate
        raise ValueError(f"no catalog for {value!r}; the catalogs are {', '.join(known)}")

    @field_validator("mfa_required_roles")
    @classmethod
    def _roles_are_known(cls, value: list[str]) -> list[str]:
        roles = [role.lower() for role in value]
        unknown = [role for role in roles if role not in ROLE_NAMES]
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r}; roles are {', '.join(ROLE_NAMES)}")
        return list(dict.fromkeys(roles))

    @field_validator("webauthn_rp_id")
    @classmethod
    def _rp_id_is_a_host(cls, value: str | None) -> str | None:
        if not value:
            return None
        host = value.strip().lower()
        if not _HOSTNAME.match(host):
            raise ValueError("must be a domain such as example.com (no scheme, port or path)")
        return host

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not an IP address or CIDR network") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_is_supported(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_redis(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must look like redis://host:6379/0 or rediss://host:6380/0")
        return value or None

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_an_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("must be an address such as Bastion <no-reply@example.com>")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_smtp(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in {"smtp", "smtps"}:
            raise ValueError("must look like smtp://user:pass@host:port or smtps://host:465")
        return value or None

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.is_production

    @property
    def token_issuer(self) -> str:
        return self.issuer or self.public_url

    @property
    def public_origin(self) -> str:
        return browser_origin(urlsplit(self.public_url))

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying-party id: the configured one, else the host of PUBLIC_URL."""
        return self.webauthn_rp_id or (urlsplit(self.public_url).hostname or "")

    @property
    def webauthn_allowed_origins(self) -> list[str]:
        """The origins a WebAuthn ceremony may come from: PUBLIC_URL's and the extra ones."""
        return list(dict.fromkeys([self.public_origin, *self.webauthn_origins]))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def production_problems(self) -> list[str]:
        """Settings that are acceptable on a laptop but unsafe in production."""
        if not self.is_production:
            return []
        problems = []
        if not self.secret_key or len(self.secret_key) < MIN_SECRET_LENGTH:
            problems.append(
                f"BASTION_SECRET_KEY: must be set to at least {MIN_SECRET_LENGTH} characters "
                "in production (generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        if not self.cookie_secure:
            problems.append("BASTION_COOKIE_SECURE: must be true in production")
        public_url_is_https = urlsplit(self.public_url).scheme == "https"
        if not public_url_is_https:
            problems.append("BASTION_PUBLIC_URL: must be https in production")
        if not self.smtp_url:
            problems.append(
                "BASTION_SMTP_URL: must be set in production (without it, emails and the "
                "one-time links in them are printed to the console)"
            )
        if self.webhook_allow_private:
            problems.append(
                "BASTION_WEBHOOK_ALLOW_PRIVATE: must be false in production (webhooks could then "
                "reach internal services and cloud metadata)"
            )
        if public_url_is_https:  # otherwise PUBLIC_URL, the RP ID's default, must change first
            problems += _rp_id_problems(self.rp_id, self.webauthn_allowed_origins)
        return problems


def _rp_id_problems(rp_id: str, origins: list[str]) -> list[str]:
    """Why browsers would refuse every WebAuthn ceremony with this RP ID, if they would: it
    must be a domain, and equal to or a parent domain of the host of every allowed origin."""
    try:
        ipaddress.ip_address(rp_id)
    except ValueError:
        pass
    else:
        return [
            f"BASTION_WEBAUTHN_RP_ID: {rp_id!r} is an IP address; WebAuthn needs a domain "
            "(set BASTION_PUBLIC_URL to a domain or BASTION_WEBAUTHN_RP_ID)"
        ]
    if "." not in rp_id:
        return [f"BASTION_WEBAUTHN_RP_ID: {rp_id!r} is a top-level name, not a registrable domain"]
    outside = [
        origin
        for origin in origins
        if not is_registrable_suffix(rp_id, urlsplit(origin).hostname or "")
    ]
    if outside:
        return [
            f"BASTION_WEBAUTHN_RP_ID: {rp_id!r} is not the host, or a parent domain of the host, "
            f"of every WebAuthn origin (not of {', '.join(outside)})"
        ]
    return []


def is_registrable_suffix(rp_id: str, host: str) -> bool:
    """Whether ``rp_id`` is ``host`` or a domain ``host`` belongs to (WebAuthn's rule for which
    origins may use an RP ID)."""
    return host == rp_id or host.endswith(f".{rp_id}")


class SettingsError(Exception):
    """The configuration is invalid; the message lists every problem."""


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, or raise SettingsError naming every invalid one."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = [
            f"BASTION_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        ]
        invalid = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        problems += _production_problems_besides(invalid, overrides)
        raise SettingsError(_format(problems)) from None
    problems = settings.production_problems()
    if problems:
        raise SettingsError(_format(problems))
    return settings


def _production_problems_besides(invalid: set[str], overrides: dict[str, Any]) -> list[str]:
    """The production problems of the settings that are otherwise valid, so that one message
    lists every problem: the invalid ones are replaced by their defaults to check the rest."""
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True)
        for name in invalid
        if name in Settings.model_fields
    }
    try:
        rest = Settings(**{**overrides, **defaults})
    except ValidationError:
        return []
    return [
        problem
        for problem in rest.production_problems()
        if problem.split(":", 1)[0].removeprefix("BASTION_").lower() not in invalid
    ]


def _format(problems: list[str]) -> str:
    return "Invalid settings:\n" + "\n".join(f"  - {problem}" for problem in problems)


def resolve_secret_key(settings: Settings) -> str:
    """The configured secret, or in development one generated once and kept in a local file.

    Several workers may start at once, so the file is created atomically: the first writer wins
    and everyone reads its value.
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.secret_key_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    candidate.write_text(secrets.token_urlsafe(48))
    candidate.chmod(0o600)
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_text().strip()
