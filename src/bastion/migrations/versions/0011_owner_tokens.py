"""Owners and admins control accounts: email-change and invitation links, revoked signing keys.

Revision ID: 0011_owner_tokens
Revises: 0010_session_assurance
Create Date: 2026-12-01 20:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_owner_tokens"
down_revision: str | None = "0010_session_assurance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invitation_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_invitation_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_invitation_tokens")),
    )
    with op.batch_alter_table("invitation_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invitation_tokens_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_invitation_tokens_expires_at"), ["expires_at"])

    op.create_table(
        "email_change_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("new_email", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_change_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_email_change_tokens")),
    )
    with op.batch_alter_table("email_change_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_change_tokens_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_email_change_tokens_expires_at"), ["expires_at"])

    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
    with op.batch_alter_table("email_change_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_change_tokens_expires_at"))
        batch_op.drop_index(batch_op.f("ix_email_change_tokens_user_id"))
    op.drop_table("email_change_tokens")
    with op.batch_alter_table("invitation_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invitation_tokens_expires_at"))
        batch_op.drop_index(batch_op.f("ix_invitation_tokens_user_id"))
    op.drop_table("invitation_tokens")
