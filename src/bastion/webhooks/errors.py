from __future__ import annotations

from bastion.core.errors import BastionError, NotFound


class WebhookNotFound(NotFound):
    """No webhook has this id."""

    detail = "Webhook not found."


class DeliveryNotFound(NotFound):
    """The webhook has no delivery with this id."""

    detail = "Delivery not found."


class WebhookUrlForbidden(BastionError):
    """The URL resolves to an address webhooks may not reach (loopback, private, link-local,
    metadata), or is not one a webhook may have."""

    detail = (
        "Webhooks may not call loopback, private, link-local or metadata addresses, "
        "and in production only https URLs."
    )


class WebhookUrlInvalid(BastionError):
    """The URL is malformed, or its host does not resolve."""

    detail = "The webhook URL is not valid."
