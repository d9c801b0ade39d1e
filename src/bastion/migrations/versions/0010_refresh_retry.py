"""Refresh tokens remember what they were traded for, and when they were traded again.

A client that never got the answer to its refresh may present the same token once more, shortly
after, while its successor is unused (sessions.service.SessionService.refresh). Tokens spent
before this revision have no recorded successor, so they are never retried.

Revision ID: 0010_refresh_retry
Revises: 0009_browser_sessions
Create Date: 2026-12-01 19:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_refresh_retry"
down_revision: str | None = "0009_browser_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("successor_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_column("retried_at")
        batch_op.drop_column("successor_hash")
