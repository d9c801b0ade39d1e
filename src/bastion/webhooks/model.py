"""Webhooks: endpoints told of events, signed per Standard Webhooks, retried for a day."""

from __future__ import annotations

import base64
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from bastion.events.model import StreamEvent, StreamEventType

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
TEST_EVENT = "webhook.test"
EVENT_TYPES = frozenset({*(kind.value for kind in StreamEventType), TEST_EVENT})
MAX_URL_LENGTH = 2048


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: uuid.UUID
    url: str
    event_types: frozenset[str]
    enabled: bool
    created_at: datetime
    failing_since: datetime | None = None

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: uuid.UUID
    message_id: str  # the webhook-id header: the same on every attempt
    event_type: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_response_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRules:
    """How deliveries are retried, and which URLs may be called."""

    # The first retry comes within this (jitter takes it down to half), then each doubles.
    first_retry: timedelta = timedelta(seconds=20)
    max_delay: timedelta = timedelta(hours=2)
    # A delivery is given up on, and an endpoint failing all along disabled, after this.
    give_up_after: timedelta = timedelta(hours=24)
    timeout_seconds: float = 10.0
    allow_private: bool = False  # WEBHOOK_ALLOW_PRIVATE
    allow_http: bool = True  # false in production

    def next_attempt(self, attempts: int, now: datetime, jitter: float) -> datetime:
        """When to try again after ``attempts`` failed ones; ``jitter`` in [0.5, 1]."""
        delay: timedelta = min(self.first_retry * (2 ** max(attempts - 1, 0)), self.max_delay)
        return now + delay * jitter

    def gives_up(self, delivery: Delivery, now: datetime) -> bool:
        return now - delivery.created_at >= self.give_up_after

    def disables(self, failing_since: datetime | None, now: datetime) -> bool:
        return failing_since is not None and now - failing_since >= self.give_up_after


def failing_since(webhook: Webhook, failed: Delivery) -> datetime:
    """Since when ``webhook``, which just failed the attempt at ``failed``, has been failing:
    unchanged if it already was, else since that attempt fell due. Counting from the moment the
    attempt was made instead would start the endpoint's window after the delivery's (which
    counts from its creation), by however long the worker took to get to it; the delivery's last
    attempt could then give up before the endpoint's window was full, and an endpoint that failed
    every attempt of the day would stay enabled."""
    return webhook.failing_since or failed.next_attempt_at


def new_secret() -> str:
    """``whsec_`` and 32 random bytes in base64, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def payload(event: StreamEvent) -> dict[str, Any]:
    """A webhook's body: ``type``, ``occurred_at`` and ``data`` (the event's fields)."""
    return {
        "type": event.type.value,
        "occurred_at": event.occurred_at.isoformat(),
        "data": dict(event.fields),
    }


def test_payload(webhook_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "type": TEST_EVENT,
        "occurred_at": now.isoformat(),
        "data": {"webhook_id": str(webhook_id)},
    }


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` cannot be a webhook's, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The URL is not valid."
    del port
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "The URL must be an http(s) URL with a host."
    if parts.scheme == "http" and not allow_http:
        return "The URL must use https."
    if parts.username or parts.password:
        return "The URL must not carry credentials."
    return None


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def forbidden_address(address: str) -> bool:
    """Whether a webhook must not reach ``address``: loopback, private, link-local (the cloud
    metadata services among them), multicast, reserved or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )
