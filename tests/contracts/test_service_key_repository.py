"""ServiceKeyRepository: keys are found by their hash, listed without it, and revoked once."""

from __future__ import annotations

import uuid

from bastion.core.secrets import hash_token
from bastion.credentials.model import Scope, ServiceKey, new_key
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import later


async def test_a_key_is_found_by_its_hash_listed_and_revoked(uow: UnitOfWorkFactory) -> None:
    secret = new_key()
    key = ServiceKey(uuid.uuid4(), "billing", frozenset({Scope.EVENTS_READ}), later(0))
    async with uow() as work:
        await work.service_keys.add(key, hash_token(secret))
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.service_keys.by_hash(hash_token(secret)) == key
        assert await work.service_keys.by_hash(hash_token(new_key())) is None
        assert await work.service_keys.list() == [key]
    async with uow() as work:
        assert await work.service_keys.revoke(key.id, later(5))
        assert await work.service_keys.revoke(key.id, later(9))
        assert not await work.service_keys.revoke(uuid.uuid4(), later(9))
        await work.commit()
    async with uow(read_only=True) as work:
        revoked = await work.service_keys.by_hash(hash_token(secret))
    assert revoked is not None and revoked.revoked_at == later(5) and not revoked.is_active
