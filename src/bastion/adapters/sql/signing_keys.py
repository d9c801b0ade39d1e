"""The signing keys table: ``SigningKeyRepository``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.tokens.model import SigningKey


class SqlSigningKeyRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def list(self) -> list[SigningKey]:
        rows = (await self._db.execute(select(tables.signing_keys))).mappings()
        return [
            SigningKey(
                kid=row["kid"],
                public_key=row["public_key"],
                private_key_sealed=row["private_key_sealed"],
                created_at=row["created_at"],
                revoked_at=row["revoked_at"],
            )
            for row in rows
        ]

    async def add(self, key: SigningKey) -> None:
        await self._db.execute(
            insert(tables.signing_keys).values(
                kid=key.kid,
                algorithm="EdDSA",
                public_key=key.public_key,
                private_key_sealed=key.private_key_sealed,
                created_at=key.created_at,
            )
        )

    async def revoke(self, kid: str, now: datetime) -> bool:
        k = tables.signing_keys.c
        result = await self._db.execute(
            update(tables.signing_keys)
            .where(k.kid == kid, k.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount == 1
