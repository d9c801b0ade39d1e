"""Service keys: issue, list, revoke, and tell which service a request comes from."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from bastion.audit.model import EventType, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.secrets import hash_token
from bastion.credentials.errors import (
    InvalidServiceKey,
    NoScopes,
    ScopeMissing,
    ServiceKeyNotFound,
)
from bastion.credentials.model import Scope, ServiceKey, looks_like_key, new_key
from bastion.storage import UnitOfWorkFactory

# What the command line records as the request of an audit event.
OPERATOR = RequestContext(ip=None, user_agent="bastion-cli")
# A revoked key stops working within this many seconds on every instance.
CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ServiceKey
    secret: str  # shown once


class ServiceKeyService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._cache: dict[str, tuple[float, ServiceKey | None]] = {}

    async def create(
        self,
        name: str,
        scopes: Iterable[Scope],
        context: RequestContext = OPERATOR,
        actor_id: uuid.UUID | None = None,
    ) -> IssuedKey:
        """A new key; ``actor_id`` is the admin who asked (none from the command line)."""
        granted = frozenset(scopes)
        if not granted:
            raise NoScopes()
        secret = new_key()
        key = ServiceKey(uuid.uuid4(), name, granted, self._clock.now())
        async with self._uow() as uow:
            await uow.service_keys.add(key, hash_token(secret))
            await uow.audit.record(
                event(
                    EventType.SERVICE_KEY_CREATED,
                    key.created_at,
                    context,
                    actor_id,
                    service_key_id=str(key.id),
                    name=name,
                    scopes=sorted(granted),
                )
            )
            await uow.commit()
        return IssuedKey(key, secret)

    async def list(self) -> list[ServiceKey]:
        async with self._uow(read_only=True) as uow:
            return await uow.service_keys.list()

    async def revoke(
        self,
        key_id: uuid.UUID,
        context: RequestContext = OPERATOR,
        actor_id: uuid.UUID | None = None,
    ) -> None:
        now = self._clock.now()
        async with self._uow() as uow:
            if not await uow.service_keys.revoke(key_id, now):
                raise ServiceKeyNotFound()
            await uow.audit.record(
                event(
                    EventType.SERVICE_KEY_REVOKED,
                    now,
                    context,
                    actor_id,
                    service_key_id=str(key_id),
                )
            )
            await uow.commit()
        self._cache.clear()

    async def authenticate(self, secret: str | None, scope: Scope) -> ServiceKey:
        """The active key ``secret`` is, if it grants ``scope``."""
        if secret is None or not looks_like_key(secret):
            raise InvalidServiceKey()
        key_hash = hash_token(secret)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            key = cached[1]
        else:
            async with self._uow(read_only=True) as uow:
                key = await uow.service_keys.by_hash(key_hash)
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key_hash] = (now, key)
        if key is None or not key.is_active:
            raise InvalidServiceKey()
        if not key.grants(scope):
            raise ScopeMissing()
        return key
