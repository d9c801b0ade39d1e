"""Credentials of other services: keys that grant scopes, never a user's rights."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

KEY_PREFIX = "bsk_"
KEY_BYTES = 32  # 256 bits
MAX_NAME_LENGTH = 100


class Scope(StrEnum):
    EVENTS_READ = "events:read"


@dataclass(frozen=True, slots=True)
class ServiceKey:
    id: uuid.UUID
    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def grants(self, scope: Scope) -> bool:
        return self.is_active and scope in self.scopes


def new_key() -> str:
    """A new service key: ``bsk_`` then 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def looks_like_key(value: str) -> bool:
    """Whether ``value`` has a service key's form (checked before any hashing or lookup)."""
    body = value.removeprefix(KEY_PREFIX)
    return (
        value.startswith(KEY_PREFIX)
        and 40 <= len(body) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in body)
    )


def scopes_text(scopes: frozenset[Scope]) -> str:
    return " ".join(sorted(scope.value for scope in scopes))


def parse_scopes(text: str) -> frozenset[Scope]:
    """The scopes stored as ``text``; unknown ones (from a later version) grant nothing."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(part) for part in text.split() if part in known)
