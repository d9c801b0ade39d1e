"""The relational schema, shared by SQLite and PostgreSQL. Alembic migrations mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


AutoIncrement = BigInteger().with_variant(Integer(), "sqlite")


def _timestamp(name: str, **kwargs: Any) -> Column[datetime]:
    return Column(name, UtcDateTime(), nullable=kwargs.pop("nullable", False), **kwargs)


users = Table(
    "users",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("is_verified", Boolean(), nullable=False),
    Column("is_active", Boolean(), nullable=False),
    _timestamp("created_at"),
    _timestamp("updated_at"),
    # Bumped by every change to what a log-in decides on (accounts.model.User).
    Column("security_version", Integer(), nullable=False, server_default="1"),
    # The admin API lists users in id order, by role and by part of their email.
    Index("ix_users_role_id", "role", "id"),
    # PostgreSQL only (the migration skips it on SQLite): trigrams serve `email LIKE '%...%'`.
    Index(
        "ix_users_email_trgm",
        "email",
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql"),
)


def _one_time_token_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("token_hash", String(64), primary_key=True),
        Column(
            "user_id",
            Uuid(),
            ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        _timestamp("created_at"),
        # The retention purge finds expired links by it.
        _timestamp("expires_at", index=True),
        _timestamp("used_at", nullable=True),
    )


email_verification_tokens = _one_time_token_table("email_verification_tokens")
password_reset_tokens = _one_time_token_table("password_reset_tokens")
# An admin's invitation: its link lets the invited user choose a password.
invitation_tokens = _one_time_token_table("invitation_tokens")

# A change of email an owner asked for, until the new address confirms it.
email_change_tokens = Table(
    "email_change_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("new_email", String(320), nullable=False),
    _timestamp("created_at"),
    _timestamp("expires_at", index=True),
    _timestamp("used_at", nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    _timestamp("created_at"),
    _timestamp("expires_at", index=True),
    _timestamp("last_seen_at"),
    Column("ip", String(45), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("remember_me", Boolean(), nullable=False),
    _timestamp("revoked_at", nullable=True),
    Column("revoke_reason", String(32), nullable=True),
    # How the session last proved who it is: aal, amr (space-separated RFC 8176 values), when.
    Column("aal", String(8), nullable=False, server_default="aal1"),
    Column("amr", String(64), nullable=False, server_default="pwd"),
    _timestamp("auth_time"),
    # The retention purge finds ended sessions by these two. Live sessions have no revoked_at,
    # so a log-in adds no entry to the second.
    Index(
        "ix_sessions_revoked_at",
        "revoked_at",
        postgresql_where=text("revoked_at IS NOT NULL"),
        sqlite_where=text("revoked_at IS NOT NULL"),
    ),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        Uuid(),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _timestamp("created_at"),
    _timestamp("rotated_at", nullable=True),
    # The hash of the token it was traded for, and when it was last traded again within the
    # retry interval (sessions.service: a client that never got its answer may ask once more).
    Column("successor_hash", String(64), nullable=True),
    _timestamp("retried_at", nullable=True),
)

# The sessions started on Bastion's own pages, by the hash of the cookie that carries each.
browser_tokens = Table(
    "browser_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        Uuid(),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _timestamp("created_at"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("public_key", LargeBinary(), nullable=False),
    Column("private_key_sealed", LargeBinary(), nullable=False),
    _timestamp("created_at"),
    # Set by `bastion keys revoke`: the key is withdrawn, and every token it signed refused.
    _timestamp("revoked_at", nullable=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoIncrement, primary_key=True, autoincrement=True),
    Column("recipient", String(320), nullable=False, index=True),
    Column("kind", String(48), nullable=False),
    # Sealed (encrypted) subject and bodies: they carry one-time links until delivered.
    Column("payload", LargeBinary(), nullable=False),
    _timestamp("created_at"),
    _timestamp("next_attempt_at"),
    Column("attempts", Integer(), nullable=False, default=0),
    _timestamp("locked_until", nullable=True),
    _timestamp("sent_at", nullable=True),
    _timestamp("failed_at", nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_outbox_due", "sent_at", "failed_at", "next_attempt_at"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", AutoIncrement, primary_key=True, autoincrement=True),
    # The retention purge finds old events by it.
    _timestamp("occurred_at", index=True),
    Column("type", String(48), nullable=False, index=True),
    Column("user_id", Uuid(), nullable=True),
    Column("ip", String(45), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("details", JSON(), nullable=False),
    Index("ix_audit_events_user_id_id", "user_id", "id"),
)

mfa_factors = Table(
    "mfa_factors",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("type", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    _timestamp("created_at"),
    _timestamp("confirmed_at", nullable=True),
    _timestamp("last_used_at", nullable=True),
    # TOTP only: the secret sealed with AES-GCM, and the last time step accepted.
    Column("totp_secret_sealed", LargeBinary(), nullable=True),
    Column("totp_last_step", BigInteger(), nullable=True),
)

webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("factor_id", Uuid(), ForeignKey("mfa_factors.id", ondelete="CASCADE"), primary_key=True),
    Column("credential_id", LargeBinary(), nullable=False, unique=True),
    Column("public_key", LargeBinary(), nullable=False),
    Column("sign_count", BigInteger(), nullable=False),
    Column("transports", JSON(), nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("backup_eligible", Boolean(), nullable=False),
    Column("backup_state", Boolean(), nullable=False),
    Column("passkey", Boolean(), nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # HMAC-SHA256 of the normalized code under a key derived from SECRET_KEY.
    Column("code_hash", String(64), primary_key=True),
    _timestamp("created_at"),
    _timestamp("used_at", nullable=True),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("challenge_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("passkey", Boolean(), nullable=False),
    _timestamp("created_at"),
    _timestamp("expires_at", index=True),
)

mfa_tokens = Table(
    "mfa_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "user_id", Uuid(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("remember_me", Boolean(), nullable=False),
    Column("security_state", String(128), nullable=False),
    _timestamp("created_at"),
    _timestamp("expires_at", index=True),
    Column("wrong_codes", Integer(), nullable=False),
    _timestamp("used_at", nullable=True),
)

# Which instance runs a background task now (background/): one row per task, while it runs.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    _timestamp("expires_at"),
)

# Credentials of other services (service_keys/): only the hash of each key is kept.
service_keys = Table(
    "service_keys",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    # Space-separated, e.g. "events:read".
    Column("scopes", String(200), nullable=False),
    _timestamp("created_at"),
    _timestamp("revoked_at", nullable=True),
)

# What happened, for other services (events/): written in the transaction of the change. Ids
# are never reused (AUTOINCREMENT on SQLite), so a stream position stays meaningful.
stream_events = Table(
    "stream_events",
    metadata,
    Column("id", AutoIncrement, primary_key=True, autoincrement=True),
    # The retention purge finds old events by it.
    _timestamp("occurred_at", index=True),
    Column("type", String(48), nullable=False),
    Column("data", JSON(), nullable=False),
    sqlite_autoincrement=True,
)

# Endpoints told of events (webhooks/); the signing secret is sealed, as it must be read to sign.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("event_types", JSON(), nullable=False),
    Column("secret_sealed", LargeBinary(), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    _timestamp("created_at"),
    # Since when every delivery to it has failed; after 24 h it is disabled.
    _timestamp("failing_since", nullable=True),
)

# One row per event and endpoint: the webhooks' outbox. message_id is the webhook-id header,
# the same on every attempt.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", AutoIncrement, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        Uuid(),
        ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("message_id", String(64), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("payload", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_response_status", Integer(), nullable=True),
    Column("last_error", String(200), nullable=True),
    _timestamp("created_at"),
    _timestamp("next_attempt_at"),
    _timestamp("locked_until", nullable=True),
    _timestamp("delivered_at", nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# How far the webhook fan-out has read the event stream (one row).
webhook_cursor = Table(
    "webhook_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger(), nullable=False),
)
