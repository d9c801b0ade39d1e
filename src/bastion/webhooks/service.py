"""Webhooks: the admin's use cases, and the worker that fans events out and delivers them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import structlog
from standardwebhooks import Webhook as Signer

from bastion.accounts.model import Role
from bastion.audit.model import EventType, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.errors import StorageUnavailable
from bastion.core.pagination import Page, page_of
from bastion.events.model import Gap, deliverable, to_the_second
from bastion.mail import messages
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from bastion.webhooks.errors import (
    DeliveryNotFound,
    WebhookNotFound,
    WebhookUrlForbidden,
    WebhookUrlInvalid,
)
from bastion.webhooks.model import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookRules,
    failing_since,
    forbidden_address,
    host_of,
    new_message_id,
    new_secret,
    payload,
    test_payload,
    url_problem,
)
from bastion.webhooks.ports import Resolver, Sender

log = structlog.get_logger("bastion.webhooks")
CURSOR_BATCH = 200
CLAIM_BATCH = 20
LEASE_SECONDS = 120
POLL_SECONDS = 0.5
IDLE_CURSOR_SECONDS = 10.0


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, rules: WebhookRules, resolver: Resolver) -> None:
    """Refuse a URL webhooks may not call; checked when it is set and at every delivery (what a
    name resolves to can change)."""
    problem = url_problem(url, allow_http=rules.allow_http)
    if problem is not None:
        raise (WebhookUrlForbidden if "https" in problem else WebhookUrlInvalid)(problem)
    if rules.allow_private:
        return
    addresses = await resolver.addresses(host_of(url), _port(url))
    if not addresses:
        raise WebhookUrlInvalid("The webhook URL's host does not resolve.")
    if any(forbidden_address(address) for address in addresses):
        raise WebhookUrlForbidden()


class WebhookService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: WebhookRules,
        resolver: Resolver,
        wake_worker: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._resolver = resolver
        self._wake_worker = wake_worker

    async def create(
        self, url: str, event_types: Iterable[str], actor_id: uuid.UUID, context: RequestContext
    ) -> tuple[Webhook, str]:
        """A new endpoint and its signing secret (shown once)."""
        await check_url(url, self._rules, self._resolver)
        secret = new_secret()
        webhook = Webhook(uuid.uuid4(), url, frozenset(event_types), True, self._clock.now())
        async with self._uow() as uow:
            await uow.webhooks.add(webhook, secret)
            await uow.audit.record(
                event(
                    EventType.WEBHOOK_CREATED,
                    webhook.created_at,
                    context,
                    actor_id,
                    webhook_id=str(webhook.id),
                    event_types=sorted(webhook.event_types),
                )
            )
            await uow.commit()
        return webhook, secret

    async def list(self) -> list[Webhook]:
        async with self._uow(read_only=True) as uow:
            return await uow.webhooks.list()

    async def get(self, webhook_id: uuid.UUID) -> Webhook:
        async with self._uow(read_only=True) as uow:
            return await _existing(uow, webhook_id)

    async def update(
        self,
        webhook_id: uuid.UUID,
        *,
        url: str | None,
        event_types: Iterable[str] | None,
        enabled: bool | None,
        actor_id: uuid.UUID,
        context: RequestContext,
    ) -> Webhook:
        if url is not None:
            await check_url(url, self._rules, self._resolver)
        async with self._uow() as uow:
            webhook = await _existing(uow, webhook_id)
            changed = replace(
                webhook,
                url=webhook.url if url is None else url,
                event_types=webhook.event_types if event_types is None else frozenset(event_types),
                enabled=webhook.enabled if enabled is None else enabled,
                # Enabled again: its failures so far no longer count towards disabling it.
                failing_since=None if enabled else webhook.failing_since,
            )
            await uow.webhooks.update(changed)
            await uow.audit.record(
                event(
                    EventType.WEBHOOK_UPDATED,
                    self._clock.now(),
                    context,
                    actor_id,
                    webhook_id=str(webhook.id),
                    url_changed=changed.url != webhook.url,
                    event_types=sorted(changed.event_types),
                    enabled=changed.enabled,
                )
            )
            await uow.commit()
        return changed

    async def delete(
        self,
        webhook_id: uuid.UUID,
        actor_id: uuid.UUID | None = None,
        context: RequestContext | None = None,
    ) -> None:
        async with self._uow() as uow:
            if not await uow.webhooks.delete(webhook_id):
                raise WebhookNotFound()
            await uow.audit.record(
                event(
                    EventType.WEBHOOK_DELETED,
                    self._clock.now(),
                    context or RequestContext(),
                    actor_id,
                    webhook_id=str(webhook_id),
                )
            )
            await uow.commit()

    async def send_test(self, webhook_id: uuid.UUID) -> Delivery:
        """Queue a ``webhook.test`` event for this endpoint alone."""
        now = self._clock.now()
        async with self._uow() as uow:
            webhook = await _existing(uow, webhook_id)
            delivery = _new_delivery(webhook.id, "webhook.test", test_payload(webhook.id, now), now)
            await uow.webhook_deliveries.add(delivery)
            await uow.commit()
        self._wake_worker()
        return delivery

    async def deliveries(
        self, webhook_id: uuid.UUID, *, before: int | None, limit: int
    ) -> Page[Delivery, int]:
        async with self._uow(read_only=True) as uow:
            await _existing(uow, webhook_id)
            found = await uow.webhook_deliveries.of_webhook(
                webhook_id, before=before, limit=limit + 1
            )
        return page_of(found, limit, lambda delivery: delivery.id)

    async def redeliver(self, webhook_id: uuid.UUID, delivery_id: int) -> Delivery:
        """Send a delivery again now, with the same webhook-id (a receiver may deduplicate)."""
        now = self._clock.now()
        async with self._uow() as uow:
            delivery = await uow.webhook_deliveries.get(webhook_id, delivery_id)
            if delivery is None:
                raise DeliveryNotFound()
            again = replace(delivery, status=DeliveryStatus.PENDING, next_attempt_at=now)
            await uow.webhook_deliveries.save(again)
            await uow.commit()
        self._wake_worker()
        return again


def _new_delivery(
    webhook_id: uuid.UUID, event_type: str, body: dict[str, object], now: datetime
) -> Delivery:
    return Delivery(
        id=0,
        webhook_id=webhook_id,
        message_id=new_message_id(),
        event_type=event_type,
        payload=dict(body),
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )


async def _existing(uow: UnitOfWork, webhook_id: uuid.UUID) -> Webhook:
    webhook = await uow.webhooks.get(webhook_id)
    if webhook is None:
        raise WebhookNotFound()
    return webhook


class WebhookWorker:
    """Turns each new event into a delivery per endpoint that wants it (reading the events table
    from a cursor kept in the database, so every instance may run it), then delivers what is
    due: the webhooks' outbox."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: WebhookRules,
        resolver: Resolver,
        sender: Sender,
        mail_queued: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._resolver = resolver
        self._sender = sender
        self._mail_queued = mail_queued
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._gap = Gap()
        self._idle_moved_at = -math.inf

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bastion-webhooks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.fan_out()
                while await self.deliver_due():
                    pass
            except StorageUnavailable:
                pass
            except Exception:
                log.exception("webhooks.round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), POLL_SECONDS)
            self._wakeup.clear()

    async def fan_out(self) -> int:
        """Deliveries for the events after the cursor; how many events were read."""
        now = self._clock.now()
        if not await self._anyone_listens(time.monotonic()):
            return 0
        async with self._uow() as uow:
            cursor = await uow.webhooks.cursor()
            if cursor is None:
                # The first instance ever to run: webhooks start with what happens from now.
                await uow.webhooks.set_cursor(await uow.events.newest_id())
                await uow.commit()
                return 0
            events = await uow.events.after(cursor, CURSOR_BATCH)
            count = deliverable(cursor, [e.id or 0 for e in events], self._gap, time.monotonic())
            if not count:
                return 0
            webhooks = [w for w in await uow.webhooks.list() if w.enabled]
            for event in events[:count]:
                for webhook in webhooks:
                    # An endpoint hears of what happened since it was added, not before.
                    if webhook.wants(event.type.value) and event.occurred_at >= (
                        to_the_second(webhook.created_at)
                    ):
                        await uow.webhook_deliveries.add(
                            _new_delivery(webhook.id, event.type.value, payload(event), now)
                        )
            await uow.webhooks.set_cursor(events[count - 1].id or cursor)
            await uow.commit()
        return count

    async def _anyone_listens(self, now: float) -> bool:
        """Whether there is an enabled webhook. Without one the cursor still follows the
        events, but a write every ``IDLE_CURSOR_SECONDS`` is enough."""
        async with self._uow(read_only=True) as uow:
            listening = any(w.enabled for w in await uow.webhooks.list())
        if listening or now - self._idle_moved_at >= IDLE_CURSOR_SECONDS:
            self._idle_moved_at = now
            return True
        return False

    async def deliver_due(self) -> int:
        """One batch of due deliveries, attempted concurrently; how many."""
        now = self._clock.now()
        async with self._uow() as uow:
            claimed = await uow.webhook_deliveries.claim_due(
                now, CLAIM_BATCH, now + timedelta(seconds=LEASE_SECONDS)
            )
            await uow.commit()
        if claimed:
            await asyncio.gather(*(self._attempt(delivery) for delivery in claimed))
        return len(claimed)

    async def _attempt(self, delivery: Delivery) -> None:
        async with self._uow(read_only=True) as uow:
            webhook = await uow.webhooks.get(delivery.webhook_id)
            secret = await uow.webhooks.secret(delivery.webhook_id)
        if webhook is None or secret is None:
            return  # deleted meanwhile; its deliveries went with it
        status: int | None = None
        error: str | None = None
        if not webhook.enabled:
            error = "the webhook is disabled"
        else:
            try:
                await check_url(webhook.url, self._rules, self._resolver)
            except (WebhookUrlForbidden, WebhookUrlInvalid) as refused:
                error = refused.detail[:200]
            else:
                status = await self._send(webhook.url, secret, delivery)
                if status is None:
                    error = "no answer"
        await self._record(webhook, delivery, status, error)

    async def _send(self, url: str, secret: str, delivery: Delivery) -> int | None:
        body = json.dumps(delivery.payload, separators=(",", ":"))
        sent_at = self._clock.now()
        signature = Signer(secret).sign(delivery.message_id, sent_at, body)
        headers = {
            "content-type": "application/json",
            "user-agent": "Bastion-Webhooks",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        }
        return await self._sender.post(url, body.encode(), headers, self._rules.timeout_seconds)

    async def _record(
        self, webhook: Webhook, delivery: Delivery, status: int | None, error: str | None
    ) -> None:
        now = self._clock.now()
        attempts = delivery.attempts + 1
        delivered = status is not None and 200 <= status < 300
        async with self._uow() as uow:
            current = await uow.webhooks.get(webhook.id)
            if current is None:
                return
            if delivered:
                outcome = replace(
                    delivery,
                    status=DeliveryStatus.DELIVERED,
                    attempts=attempts,
                    last_response_status=status,
                    last_error=None,
                )
                await uow.webhook_deliveries.save(outcome, delivered_at=now)
                if current.failing_since is not None:
                    await uow.webhooks.update(replace(current, failing_since=None))
                await uow.commit()
                return
            gives_up = self._rules.gives_up(delivery, now)
            outcome = replace(
                delivery,
                status=DeliveryStatus.FAILED if gives_up else DeliveryStatus.PENDING,
                attempts=attempts,
                last_response_status=status,
                last_error=error or f"status {status}",
                next_attempt_at=self._rules.next_attempt(
                    attempts,
                    now,
                    random.uniform(0.5, 1.0),  # noqa: S311 - jitter, not a secret
                ),
            )
            await uow.webhook_deliveries.save(outcome)
            since = failing_since(current, delivery)
            disable = current.enabled and self._rules.disables(since, now)
            if disable:
                await uow.webhooks.update(replace(current, enabled=False, failing_since=since))
                await self._tell_admins(uow, current.url, now)
            elif current.failing_since is None:
                await uow.webhooks.update(replace(current, failing_since=since))
            await uow.commit()
        if disable:
            log.warning("webhooks.disabled", webhook_id=str(webhook.id))
            self._mail_queued()

    async def _tell_admins(self, uow: UnitOfWork, url: str, now: datetime) -> None:
        after = None
        while True:
            admins = await uow.users.search(
                email_contains=None, role=Role.ADMIN, after=after, limit=100
            )
            for admin in admins:
                if admin.is_active:
                    await uow.outbox.add(messages.webhook_disabled(admin.email, url), now)
            if len(admins) < 100:
                return
            after = admins[-1].id
