"""The users table: ``UserRepository`` over one unit of work's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from bastion.accounts.errors import SecurityStateChanged
from bastion.accounts.model import Role, User
from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import Condition, SqlTransaction

# The statements of the busy paths are built once. (In an UPDATE, a parameter may not share
# a column's name.) SQLAlchemy then skips building them and
# computing their cache keys on every call, which costs as much as the round trip itself.
_users = tables.users.c
USER_BY_ID = select(tables.users).where(_users.id == bindparam("id"))
# FOR UPDATE on PostgreSQL; SQLite's write transactions already run one at a time.
USER_BY_ID_FOR_UPDATE = USER_BY_ID.with_for_update()
USER_BY_EMAIL = select(tables.users).where(_users.email == bindparam("email"))
UPDATE_USER = update(tables.users).where(_users.id == bindparam("user_id"))
UPGRADE_PASSWORD_HASH = (
    update(tables.users)
    .where(_users.id == bindparam("user_id"), _users.password_hash == bindparam("verified_hash"))
    .values(password_hash=bindparam("upgraded_hash"))
)
SECURITY_STATE_HELD = Condition(
    select(_users.id).where(
        _users.id == bindparam("held_user_id"),
        _users.security_version == bindparam("held_version"),
    ),
    SecurityStateChanged,
)


class SqlUserRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, user: User) -> None:
        # A second account with the email fails at the commit: see SqlUnitOfWork.
        self._db.insert_later(tables.users, _user_row(user))

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._one(USER_BY_ID, {"id": user_id})

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        return await self._one(USER_BY_ID_FOR_UPDATE, {"id": user_id})

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(USER_BY_EMAIL, {"email": email})

    async def update(self, user: User) -> None:
        changes = _user_row(user)
        await self._db.execute(UPDATE_USER, {"user_id": changes.pop("id"), **changes})

    async def upgrade_password_hash(
        self, user_id: uuid.UUID, verified_hash: str, upgraded_hash: str
    ) -> bool:
        parameters = {
            "user_id": user_id,
            "verified_hash": verified_hash,
            "upgraded_hash": upgraded_hash,
        }
        return bool((await self._db.execute(UPGRADE_PASSWORD_HASH, parameters)).rowcount)

    async def delete(self, user_id: uuid.UUID) -> None:
        await self._db.execute(delete(tables.users).where(tables.users.c.id == user_id))

    async def search(
        self, *, email_contains: str | None, role: Role | None, after: uuid.UUID | None, limit: int
    ) -> list[User]:
        query = select(tables.users).order_by(tables.users.c.id).limit(limit)
        if email_contains:
            query = query.where(tables.users.c.email.contains(email_contains, autoescape=True))
        if role is not None:
            query = query.where(tables.users.c.role == role.value)
        if after is not None:
            query = query.where(tables.users.c.id > after)
        return [user_from_row(row) for row in (await self._db.execute(query)).mappings()]

    async def count_active_admins(self) -> int:
        """Count the active admins and, on PostgreSQL, lock their rows until the transaction ends.

        Two admins demoting each other at once would otherwise both see two admins and leave
        none. The lock makes the second wait and then count what the first committed. (SQLite
        write transactions already run one at a time.)
        """
        u = tables.users.c
        query = select(u.id).where(u.role == Role.ADMIN.value, u.is_active.is_(True)).order_by(u.id)
        if self._db.dialect == "postgresql":
            query = query.with_for_update()
        return len((await self._db.execute(query)).all())

    async def _one(self, query: Any, parameters: dict[str, Any]) -> User | None:
        row = (await self._db.execute(query, parameters)).mappings().first()
        return user_from_row(row) if row else None


def _user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "password_hash": user.password_hash,
        "role": user.role.value,
        "is_verified": user.is_verified,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "security_version": user.security_version,
    }


def user_from_row(row: Any) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        role=Role(row["role"]),
        is_verified=row["is_verified"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        security_version=row["security_version"],
    )
