"""The one-time token tables (email verification, password reset): ``OneTimeTokenRepository``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Table, select, update

from bastion.adapters.sql.transaction import SqlTransaction
from bastion.core.account_at import AccountAt
from bastion.core.one_time_tokens import OneTimeToken


class SqlOneTimeTokenRepository:
    def __init__(self, connection: SqlTransaction, table: Table) -> None:
        self._db = connection
        self._table = table

    async def add(self, token: OneTimeToken) -> None:
        self._db.insert_later(
            self._table,
            {
                "token_hash": token.token_hash,
                "user_id": token.user_id,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "used_at": token.used_at,
            },
        )

    async def add_for(
        self, account: AccountAt, token_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        self._db.insert_later_for(
            account,
            self._table,
            {"token_hash": token_hash, "created_at": created_at, "expires_at": expires_at},
            id_column="user_id",
        )

    async def get(self, token_hash: str) -> OneTimeToken | None:
        query = select(self._table).where(self._table.c.token_hash == token_hash)
        row = (await self._db.execute(query)).mappings().first()
        if row is None:
            return None
        return OneTimeToken(
            token_hash=row["token_hash"],
            user_id=row["user_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            used_at=row["used_at"],
        )

    async def spend(self, token_hash: str, now: datetime) -> bool:
        result = await self._db.execute(
            update(self._table)
            .where(self._table.c.token_hash == token_hash, self._table.c.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self._db.execute(
            update(self._table)
            .where(self._table.c.user_id == user_id, self._table.c.used_at.is_(None))
            .values(used_at=now)
        )
