"""The webhooks, webhook_deliveries and webhook_cursor tables."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, Update, bindparam, delete, insert, or_, select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.core.secrets import Sealer
from bastion.webhooks.model import Delivery, DeliveryStatus, Webhook

_hooks = tables.webhooks.c
_deliveries = tables.webhook_deliveries.c
_cursor = tables.webhook_cursor.c
CURSOR = "webhooks"


class SqlWebhookRepository:
    def __init__(self, connection: SqlTransaction, sealer: Sealer) -> None:
        self._db = connection
        self._sealer = sealer

    async def add(self, webhook: Webhook, secret: str) -> None:
        self._db.insert_later(
            tables.webhooks,
            {**_row(webhook), "secret_sealed": self._sealer.seal(secret.encode())},
        )

    async def get(self, webhook_id: uuid.UUID) -> Webhook | None:
        query = select(tables.webhooks).where(_hooks.id == webhook_id)
        row = (await self._db.execute(query)).mappings().first()
        return _webhook(row) if row else None

    async def secret(self, webhook_id: uuid.UUID) -> str | None:
        query = select(_hooks.secret_sealed).where(_hooks.id == webhook_id)
        sealed = (await self._db.execute(query)).scalar_one_or_none()
        return None if sealed is None else self._sealer.open(sealed).decode()

    async def list(self) -> list[Webhook]:
        query = select(tables.webhooks).order_by(_hooks.created_at, _hooks.id)
        return [_webhook(row) for row in (await self._db.execute(query)).mappings()]

    async def update(self, webhook: Webhook) -> None:
        await self._db.execute(
            update(tables.webhooks).where(_hooks.id == webhook.id).values(**_row(webhook))
        )

    async def delete(self, webhook_id: uuid.UUID) -> bool:
        result = await self._db.execute(delete(tables.webhooks).where(_hooks.id == webhook_id))
        return bool(result.rowcount)

    async def cursor(self) -> int | None:
        query = select(_cursor.position).where(_cursor.name == CURSOR)
        if self._db.dialect == "postgresql":
            query = query.with_for_update()
        position: int | None = (await self._db.execute(query)).scalar_one_or_none()
        return position

    async def set_cursor(self, position: int) -> None:
        changed = await self._db.execute(
            update(tables.webhook_cursor).where(_cursor.name == CURSOR).values(position=position)
        )
        if not changed.rowcount:
            await self._db.execute(
                insert(tables.webhook_cursor).values(name=CURSOR, position=position)
            )


@functools.cache
def claim_due(dialect: str) -> Update:
    now = bindparam("now", type_=_deliveries.next_attempt_at.type)
    due = (
        select(_deliveries.id)
        .where(
            _deliveries.status == DeliveryStatus.PENDING.value,
            _deliveries.next_attempt_at <= now,
            or_(_deliveries.locked_until.is_(None), _deliveries.locked_until < now),
        )
        .order_by(_deliveries.next_attempt_at, _deliveries.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        update(tables.webhook_deliveries)
        .where(_deliveries.id.in_(due.scalar_subquery()))
        .values(locked_until=bindparam("lease_until"))
        .returning(*tables.webhook_deliveries.c)
    )


class SqlDeliveryRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, delivery: Delivery) -> None:
        row = _delivery_row(delivery)
        del row["id"]
        self._db.insert_later(tables.webhook_deliveries, row)

    async def get(self, webhook_id: uuid.UUID, delivery_id: int) -> Delivery | None:
        query = select(tables.webhook_deliveries).where(
            _deliveries.id == delivery_id, _deliveries.webhook_id == webhook_id
        )
        row = (await self._db.execute(query)).mappings().first()
        return _delivery(row) if row else None

    async def of_webhook(
        self, webhook_id: uuid.UUID, *, before: int | None, limit: int
    ) -> list[Delivery]:
        query = select(tables.webhook_deliveries).where(_deliveries.webhook_id == webhook_id)
        if before is not None:
            query = query.where(_deliveries.id < before)
        query = query.order_by(_deliveries.id.desc()).limit(limit)
        return [_delivery(row) for row in (await self._db.execute(query)).mappings()]

    async def claim_due(self, now: datetime, limit: int, lease_until: datetime) -> list[Delivery]:
        parameters = {"now": now, "limit": limit, "lease_until": lease_until}
        result = await self._db.execute(claim_due(self._db.dialect), parameters)
        return sorted((_delivery(row) for row in result.mappings()), key=lambda d: d.id)

    async def save(self, delivery: Delivery, *, delivered_at: datetime | None = None) -> None:
        await self._db.execute(
            update(tables.webhook_deliveries)
            .where(_deliveries.id == delivery.id)
            .values(
                status=delivery.status.value,
                attempts=delivery.attempts,
                last_response_status=delivery.last_response_status,
                last_error=delivery.last_error,
                next_attempt_at=delivery.next_attempt_at,
                locked_until=None,
                delivered_at=delivered_at,
            )
        )

    async def ids_of(self, webhook_id: uuid.UUID) -> Sequence[int]:
        query = select(_deliveries.id).where(_deliveries.webhook_id == webhook_id)
        return list((await self._db.execute(query)).scalars())


def _row(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "event_types": sorted(webhook.event_types),
        "enabled": webhook.enabled,
        "created_at": webhook.created_at,
        "failing_since": webhook.failing_since,
    }


def _webhook(row: RowMapping) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        event_types=frozenset(row["event_types"]),
        enabled=row["enabled"],
        created_at=row["created_at"],
        failing_since=row["failing_since"],
    )


def _delivery_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "message_id": delivery.message_id,
        "event_type": delivery.event_type,
        "payload": delivery.payload,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_response_status": delivery.last_response_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
    }


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        message_id=row["message_id"],
        event_type=row["event_type"],
        payload=row["payload"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        last_response_status=row["last_response_status"],
        last_error=row["last_error"],
    )
