"""Retention and background tasks: the leases table, and the indexes the retention purge uses.

On PostgreSQL the indexes are built CONCURRENTLY, outside the migration's transaction: on a
large audit or sessions table a plain CREATE INDEX would block every log-in while it runs.

Revision ID: 0006_retention
Revises: 0001
Create Date: 2026-11-28 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_retention"
down_revision: str | None = "0004_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, column, partial-index condition)
INDEXES = [
    ("ix_audit_events_occurred_at", "audit_events", "occurred_at", None),
    ("ix_sessions_expires_at", "sessions", "expires_at", None),
    ("ix_sessions_revoked_at", "sessions", "revoked_at", "revoked_at IS NOT NULL"),
    (
        "ix_email_verification_tokens_expires_at",
        "email_verification_tokens",
        "expires_at",
        None,
    ),
    ("ix_password_reset_tokens_expires_at", "password_reset_tokens", "expires_at", None),
]


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, column, where in INDEXES:
                op.create_index(
                    name,
                    table,
                    [column],
                    postgresql_concurrently=True,
                    postgresql_where=sa.text(where) if where else None,
                )
    else:
        for name, table, column, where in INDEXES:
            op.create_index(name, table, [column], sqlite_where=sa.text(where) if where else None)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, table, _, _ in reversed(INDEXES):
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
    else:
        for name, table, _, _ in reversed(INDEXES):
            op.drop_index(name, table_name=table)
    op.drop_table("leases")
