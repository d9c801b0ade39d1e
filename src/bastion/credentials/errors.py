from __future__ import annotations

from bastion.core.errors import BastionError, Forbidden, NotFound, Unauthenticated


class ServiceKeyNotFound(NotFound):
    """No service key has this id."""

    detail = "Service key not found."


class InvalidServiceKey(Unauthenticated):
    """The request carries no service key, or one that is unknown or revoked."""

    detail = "A valid service key is required: Authorization: Bearer bsk_…"


class ScopeMissing(Forbidden):
    """The service key does not grant the scope this needs."""

    detail = "The service key does not grant the scope this requires."


class NoScopes(BastionError):
    """A service key must grant at least one scope."""

    detail = "Give the key at least one scope."
