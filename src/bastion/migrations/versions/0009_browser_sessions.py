"""Sessions started on Bastion's own pages: the hash of the cookie that carries each.

Revision ID: 0009_browser_sessions
Revises: 0006_retention
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_browser_sessions"
down_revision: str | None = "0005_admin_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "browser_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_browser_tokens_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_browser_tokens")),
    )
    with op.batch_alter_table("browser_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_browser_tokens_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("browser_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_browser_tokens_session_id"))
    op.drop_table("browser_tokens")
