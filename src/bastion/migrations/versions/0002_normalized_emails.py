"""Every stored email address in its canonical form (see bastion.core.email_address).

Two rows whose addresses share a canonical form would be one account under the new rule. The
migration does not guess which of them owns the address: it changes nothing and stops, naming
the rows, so that an operator decides (the release before this one keeps running meanwhile).
A stored address that has no canonical form at all can collide with no one; it is left as it is
and named in a warning (no log-in could reach that account before either).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:00:00.000000
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import structlog
from alembic import op

from bastion.core.email_address import InvalidEmailAddress, normalize_email
from bastion.migrate import MigrationStopped

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = structlog.get_logger("bastion.migrations")
users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String(320)),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(users.c.id, users.c.email, users.c.created_at).order_by(users.c.created_at)
    ).all()
    holders: defaultdict[str, list[tuple[uuid.UUID, str, datetime]]] = defaultdict(list)
    unnormalizable: list[str] = []
    for user_id, email, created_at in rows:
        try:
            holders[normalize_email(email)].append((user_id, email, created_at))
        except InvalidEmailAddress as exc:
            unnormalizable.append(f"user {user_id} {email!r}: {exc.detail}")
    collisions = {canonical: held for canonical, held in holders.items() if len(held) > 1}
    if collisions:
        raise MigrationStopped(_collision_report(collisions))
    if unnormalizable:
        log.warning("migration.emails_left_as_they_are", users=unnormalizable)
    for canonical, [(user_id, email, _)] in holders.items():
        if email != canonical:
            connection.execute(users.update().where(users.c.id == user_id).values(email=canonical))


def downgrade() -> None:
    """Nothing to undo: canonical addresses are valid addresses before this revision too, and
    the spellings they replaced are not kept."""


def _collision_report(collisions: dict[str, list[tuple[uuid.UUID, str, datetime]]]) -> str:
    lines = [
        "Migration 0002 stopped and changed nothing: these accounts' email addresses are one "
        "address once normalized (NFKC and casefolding), and an address belongs to one account."
    ]
    for canonical, held in sorted(collisions.items()):
        lines.append(f"  {canonical!r} is the address of:")
        lines += [f"    - user {i} {email!r}, created {at:%Y-%m-%d %H:%M}" for i, email, at in held]
    lines.append(
        "Decide which account keeps each address. Delete the others "
        "(DELETE /api/v1/admin/users/{id} on the running release) or give them another address "
        "in SQL, then run `bastion migrate` again."
    )
    return "\n".join(lines)
