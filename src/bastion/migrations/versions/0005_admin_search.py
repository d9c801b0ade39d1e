"""Admin user search at scale: a trigram index for the email substring search (PostgreSQL) and
an index for listing users of one role in id order.

Without them, a search for part of an email, or a page of the few admins, walks the whole users
table in id order: at a million users, hundreds of milliseconds per page.

Revision ID: 0005_admin_search
Revises: 0006_retention
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_admin_search"
down_revision: str | None = "0006_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index("ix_users_role_id", "users", ["role", "id"])
        return
    # pg_trgm is a trusted extension: a database owner may create it without superuser.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # CONCURRENTLY, outside the migration's transaction, as 0006 builds its indexes: a plain
    # CREATE INDEX would hold off every write to users (sign-ups, verifications, password
    # changes) while it reads a million rows.
    with op.get_context().autocommit_block():
        op.create_index("ix_users_role_id", "users", ["role", "id"], postgresql_concurrently=True)
        op.create_index(
            "ix_users_email_trgm",
            "users",
            ["email"],
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index("ix_users_role_id", table_name="users")
        return
    with op.get_context().autocommit_block():
        op.drop_index("ix_users_email_trgm", table_name="users", postgresql_concurrently=True)
        op.drop_index("ix_users_role_id", table_name="users", postgresql_concurrently=True)
