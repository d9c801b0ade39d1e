"""The admin API for webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from bastion.admin.access import IntegrationsReader, IntegrationsWriter
from bastion.http.deps import ContextDep, provider
from bastion.http.errors import ProblemRows, ProblemType, raises
from bastion.webhooks.errors import (
    DeliveryNotFound,
    WebhookNotFound,
    WebhookUrlForbidden,
    WebhookUrlInvalid,
)
from bastion.webhooks.model import MAX_URL_LENGTH, Delivery, DeliveryStatus, Webhook
from bastion.webhooks.service import WebhookService

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["admin"])
PROBLEMS: ProblemRows = {
    WebhookNotFound: ProblemType(404, "WEBHOOK_NOT_FOUND", "Webhook not found"),
    DeliveryNotFound: ProblemType(404, "DELIVERY_NOT_FOUND", "Delivery not found"),
    WebhookUrlForbidden: ProblemType(422, "WEBHOOK_URL_FORBIDDEN", "Webhook URL forbidden"),
    WebhookUrlInvalid: ProblemType(422, "WEBHOOK_URL_INVALID", "Webhook URL invalid"),
}
WebhooksDep = Annotated[WebhookService, Depends(provider(WebhookService))]
EventType = Literal[
    "session.revoked",
    "user.disabled",
    "user.deleted",
    "user.role_changed",
    "password.changed",
    "password.reset",
    "mfa.changed",
    "signing_key.revoked",
    "user.registered",
    "user.verified",
]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        pattern=r"^https?://[^\s/?#@]+(/\S*)?$",
        description="An https URL (http outside production) whose host resolves to a public "
        "address",
    ),
]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=20)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    enabled: StrictBool | None = None


class WebhookView(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    failing_since: datetime | None


class CreatedWebhook(WebhookView):
    secret: str = Field(description="The signing secret (whsec_…): shown this once")


class WebhookList(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    id: int
    webhook_id: uuid.UUID
    message_id: str = Field(description="The webhook-id header, the same on every attempt")
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_response_status: int | None
    next_attempt_at: datetime | None = Field(description="Null once delivered or given up")
    created_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryView]
    next_cursor: str | None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook (admin); its signing secret is in this answer only",
)
@raises(WebhookUrlForbidden, WebhookUrlInvalid)
async def create_webhook(
    body: WebhookCreate, admin: IntegrationsWriter, webhooks: WebhooksDep, context: ContextDep
) -> CreatedWebhook:
    webhook, secret = await webhooks.create(body.url, body.event_types, admin.user_id, context)
    return CreatedWebhook(**_view(webhook).model_dump(), secret=secret)


@router.get("", summary="Webhooks, without their secrets (admin)")
async def list_webhooks(_: IntegrationsReader, webhooks: WebhooksDep) -> WebhookList:
    return WebhookList(items=[_view(webhook) for webhook in await webhooks.list()])


@router.get("/{webhook_id}", summary="One webhook (admin)")
@raises(WebhookNotFound)
async def get_webhook(
    webhook_id: uuid.UUID, _: IntegrationsReader, webhooks: WebhooksDep
) -> WebhookView:
    return _view(await webhooks.get(webhook_id))


@router.patch("/{webhook_id}", summary="Change a webhook's URL, events or status (admin)")
@raises(WebhookNotFound, WebhookUrlForbidden, WebhookUrlInvalid)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    admin: IntegrationsWriter,
    webhooks: WebhooksDep,
    context: ContextDep,
) -> WebhookView:
    webhook = await webhooks.update(
        webhook_id,
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
        actor_id=admin.user_id,
        context=context,
    )
    return _view(webhook)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook and its deliveries (admin)",
)
@raises(WebhookNotFound)
async def delete_webhook(
    webhook_id: uuid.UUID, admin: IntegrationsWriter, webhooks: WebhooksDep, context: ContextDep
) -> None:
    await webhooks.delete(webhook_id, admin.user_id, context)


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send the webhook a webhook.test event (admin)",
)
@raises(WebhookNotFound)
async def test_webhook(
    webhook_id: uuid.UUID, _: IntegrationsWriter, webhooks: WebhooksDep
) -> DeliveryView:
    return _delivery_view(await webhooks.send_test(webhook_id))


@router.get("/{webhook_id}/deliveries", summary="The webhook's deliveries, newest first (admin)")
@raises(WebhookNotFound)
async def list_deliveries(
    webhook_id: uuid.UUID,
    _: IntegrationsReader,
    webhooks: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[int | None, Query(ge=1, description="`next_cursor` of the last page")] = None,
) -> DeliveryPage:
    page = await webhooks.deliveries(webhook_id, before=cursor, limit=limit)
    next_cursor = None if page.next_cursor is None else str(page.next_cursor)
    return DeliveryPage(items=[_delivery_view(d) for d in page.items], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again now, with the same webhook-id (admin)",
)
@raises(DeliveryNotFound)
async def redeliver(
    webhook_id: uuid.UUID,
    delivery_id: Annotated[int, Path(ge=1, le=2**62)],
    _: IntegrationsWriter,
    webhooks: WebhooksDep,
) -> DeliveryView:
    return _delivery_view(await webhooks.redeliver(webhook_id, delivery_id))


def _view(webhook: Webhook) -> WebhookView:
    return WebhookView(
        id=webhook.id,
        url=webhook.url,
        event_types=sorted(webhook.event_types),
        enabled=webhook.enabled,
        created_at=webhook.created_at,
        failing_since=webhook.failing_since,
    )


def _delivery_view(delivery: Delivery) -> DeliveryView:
    pending = delivery.status is DeliveryStatus.PENDING
    fields: dict[str, Any] = {
        "id": delivery.id,
        "webhook_id": delivery.webhook_id,
        "message_id": delivery.message_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_response_status": delivery.last_response_status,
        "next_attempt_at": delivery.next_attempt_at if pending else None,
        "created_at": delivery.created_at,
    }
    return DeliveryView(**fields)
