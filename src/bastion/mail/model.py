"""Email messages and the delivery rules of the outbox."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from bastion.core.i18n import SOURCE_LOCALE

MAX_BACKOFF_SECONDS = 900


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """An email as a use case writes it. Queued, ``html`` holds the paragraphs of the message;
    ``MailLayout`` wraps them (and ``text``) in the brand's header and footer when it is sent."""

    recipient: str
    subject: str
    text: str
    html: str
    kind: str
    action_url: str | None = None  # the one link the message asks the reader to follow
    action_label: str | None = None
    # The language it was written in; None for a message queued before messages had one,
    # which is sent as it was written.
    locale: str | None = SOURCE_LOCALE


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    message: EmailMessage
    attempts: int


def retry_at(now: datetime, attempts: int, jitter: float | None = None) -> datetime:
    """When to try again after ``attempts`` failed deliveries: exponential backoff with jitter."""
    base = min(2 ** max(attempts - 1, 0) * 5, MAX_BACKOFF_SECONDS)
    spread = random.random() if jitter is None else jitter  # noqa: S311 - timing, not security
    return now + timedelta(seconds=base * (0.5 + spread / 2))


@dataclass
class CircuitBreaker:
    """Stops hammering a failing SMTP server: after ``threshold`` consecutive transport
    failures, delivery pauses for ``pause`` seconds, then one message probes the server."""

    threshold: int = 5
    pause: timedelta = timedelta(seconds=60)
    consecutive_failures: int = 0
    open_until: datetime | None = None

    def allows(self, now: datetime) -> bool:
        return self.open_until is None or now >= self.open_until

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.open_until = None

    def record_failure(self, now: datetime) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.threshold:
            self.open_until = now + self.pause


# The goodbye to a deleted account: once delivered, the outbox keeps no copy of its address or
# body (the account is erased; only the delivery had to wait).
ACCOUNT_DELETED = "account_deleted"
FORGOTTEN_ONCE_SENT = frozenset({ACCOUNT_DELETED})
