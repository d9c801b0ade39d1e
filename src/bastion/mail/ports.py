from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bastion.core.account_at import AccountAt
from bastion.mail.model import EmailMessage, QueuedMessage


class Outbox(Protocol):
    async def add(self, message: EmailMessage, now: datetime) -> None: ...

    async def add_for(self, account: AccountAt, message: EmailMessage, now: datetime) -> None:
        """Queue ``message`` if there is such an account, and nothing otherwise; the same
        statements either way."""
        ...

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[QueuedMessage]:
        """Lease due messages to this worker; a lease that lapses (crash) frees them again."""
        ...

    async def mark_sent(self, message_ids: Sequence[int], now: datetime) -> None: ...

    async def release(self, message_ids: Sequence[int]) -> None:
        """End the lease of claimed messages that were not tried, and give back their attempt."""
        ...

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None: ...

    async def mark_failed(self, message_id: int, now: datetime, error: str) -> None: ...

    async def backlog(self) -> int: ...

    async def forget_recipient(self, recipient: str) -> None: ...

    async def forget(self, message_ids: Sequence[int]) -> None:
        """Delete these messages, address and body (sent ones the outbox must not keep)."""
        ...


class MailTransport(Protocol):
    async def send(self, message: EmailMessage, sender: str) -> None: ...
