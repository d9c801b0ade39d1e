"""The service_keys table: the ``ServiceKeyRepository`` port."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, bindparam, select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.credentials.model import ServiceKey, parse_scopes, scopes_text

_keys = tables.service_keys.c
KEY_BY_HASH = select(tables.service_keys).where(_keys.key_hash == bindparam("key_hash"))


class SqlServiceKeyRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, key: ServiceKey, key_hash: str) -> None:
        self._db.insert_later(
            tables.service_keys,
            {
                "id": key.id,
                "name": key.name,
                "key_hash": key_hash,
                "scopes": scopes_text(key.scopes),
                "created_at": key.created_at,
                "revoked_at": key.revoked_at,
            },
        )

    async def by_hash(self, key_hash: str) -> ServiceKey | None:
        row = (await self._db.execute(KEY_BY_HASH, {"key_hash": key_hash})).mappings().first()
        return _key(row) if row else None

    async def list(self) -> list[ServiceKey]:
        query = select(tables.service_keys).order_by(_keys.created_at, _keys.id)
        return [_key(row) for row in (await self._db.execute(query)).mappings()]

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        found = await self._db.execute(select(_keys.id).where(_keys.id == key_id))
        if found.first() is None:
            return False
        await self._db.execute(
            update(tables.service_keys)
            .where(_keys.id == key_id, _keys.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return True


def _key(row: RowMapping | dict[str, Any]) -> ServiceKey:
    return ServiceKey(
        id=row["id"],
        name=row["name"],
        scopes=parse_scopes(row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
