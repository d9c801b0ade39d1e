"""The pending changes of email: ``EmailChangeRepository``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.owners.model import EmailChange

_changes = tables.email_change_tokens.c


class SqlEmailChangeRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, change: EmailChange) -> None:
        self._db.insert_later(
            tables.email_change_tokens,
            {
                "token_hash": change.token_hash,
                "user_id": change.user_id,
                "new_email": change.new_email,
                "created_at": change.created_at,
                "expires_at": change.expires_at,
                "used_at": change.used_at,
            },
        )

    async def get(self, token_hash: str) -> EmailChange | None:
        query = select(tables.email_change_tokens).where(_changes.token_hash == token_hash)
        row = (await self._db.execute(query)).mappings().first()
        return None if row is None else EmailChange(**row)

    async def spend(self, token_hash: str, now: datetime) -> bool:
        result = await self._db.execute(
            update(tables.email_change_tokens)
            .where(_changes.token_hash == token_hash, _changes.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self._db.execute(
            update(tables.email_change_tokens)
            .where(_changes.user_id == user_id, _changes.used_at.is_(None))
            .values(used_at=now)
        )
