from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bastion.webhooks.model import Delivery, Webhook


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook, secret: str) -> None: ...

    async def get(self, webhook_id: uuid.UUID) -> Webhook | None: ...

    async def secret(self, webhook_id: uuid.UUID) -> str | None: ...

    async def list(self) -> list[Webhook]: ...

    async def update(self, webhook: Webhook) -> None: ...

    async def delete(self, webhook_id: uuid.UUID) -> bool: ...

    async def cursor(self) -> int | None:
        """How far the fan-out has read the event stream, locked until the commit."""
        ...

    async def set_cursor(self, position: int) -> None: ...


class DeliveryRepository(Protocol):
    async def add(self, delivery: Delivery) -> None: ...

    async def get(self, webhook_id: uuid.UUID, delivery_id: int) -> Delivery | None: ...

    async def of_webhook(
        self, webhook_id: uuid.UUID, *, before: int | None, limit: int
    ) -> list[Delivery]:
        """Newest first."""
        ...

    async def claim_due(self, now: datetime, limit: int, lease_until: datetime) -> list[Delivery]:
        """Pending deliveries due by ``now``, leased to the caller until ``lease_until``."""
        ...

    async def save(self, delivery: Delivery, *, delivered_at: datetime | None = None) -> None:
        """Store the outcome of an attempt (status, attempts, response, next attempt) and end
        the lease."""
        ...

    async def ids_of(self, webhook_id: uuid.UUID) -> Sequence[int]: ...


class Resolver(Protocol):
    async def addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to; empty if it does not."""
        ...


class Sender(Protocol):
    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> int | None:
        """POST and return the status, or None if no answer came (refused, timed out)."""
        ...
