"""Session assurance: how each session last proved who it is (aal, amr) and when (auth_time).

Sessions from before were all password log-ins: aal1, ["pwd"], proven when they started.

Revision ID: 0010_session_assurance
Revises: 0010_refresh_retry
Create Date: 2026-12-01 19:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_session_assurance"
down_revision: str | None = "0010_refresh_retry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("aal", sa.String(length=8), server_default="aal1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("amr", sa.String(length=64), server_default="pwd", nullable=False)
        )
        batch_op.add_column(sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE sessions SET auth_time = created_at")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.alter_column("auth_time", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("auth_time")
        batch_op.drop_column("amr")
        batch_op.drop_column("aal")
