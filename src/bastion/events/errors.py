from __future__ import annotations

from bastion.core.errors import BastionError


class PositionExpired(BastionError):
    """The stream cannot resume from this Last-Event-ID: events after it are no longer kept."""

    detail = "Events after this Last-Event-ID are no longer kept: reconnect without it and resync."


class InvalidPosition(BastionError):
    """The Last-Event-ID is not an event id of this stream."""

    detail = "Last-Event-ID must be an event id from this stream."
