from __future__ import annotations

from bastion.core.errors import BastionError, Conflict, NotFound


class UserNotFound(NotFound):
    """No user has this id."""

    detail = "User not found."


class LastAdmin(Conflict):
    """The change would leave no active admin to manage the service."""

    detail = "This is the last active admin: promote another admin first."


class InvalidCursor(BastionError):
    """The pagination cursor was not one this API handed out."""

    detail = "The cursor is invalid; start again from the first page."
