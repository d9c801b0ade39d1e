"""SigningKeyRepository: the same behaviour everywhere."""

from __future__ import annotations

import os
import uuid

from bastion.storage import UnitOfWorkFactory
from bastion.tokens.model import SigningKey
from tests.contracts.rows import later


def a_key(created: float) -> SigningKey:
    return SigningKey(
        kid=uuid.uuid4().hex,
        public_key=os.urandom(32),
        private_key_sealed=os.urandom(60),
        created_at=later(created),
    )


async def test_there_are_no_keys_at_first(uow: UnitOfWorkFactory) -> None:
    async with uow(read_only=True) as work:
        assert await work.signing_keys.list() == []


async def test_every_added_key_is_listed_as_it_was_stored(uow: UnitOfWorkFactory) -> None:
    keys = [a_key(0), a_key(60)]
    async with uow() as work:
        for key in keys:
            await work.signing_keys.add(key)
        await work.commit()
    async with uow(read_only=True) as work:
        listed = await work.signing_keys.list()
    assert sorted(listed, key=lambda key: key.created_at) == keys


async def test_a_key_is_revoked_once(uow: UnitOfWorkFactory) -> None:
    key = a_key(0)
    async with uow() as work:
        await work.signing_keys.add(key)
        await work.commit()
    async with uow() as work:
        assert await work.signing_keys.revoke(key.kid, later(30)) is True
        assert await work.signing_keys.revoke(key.kid, later(40)) is False
        assert await work.signing_keys.revoke("unknown", later(40)) is False
        await work.commit()
    async with uow(read_only=True) as work:
        [listed] = await work.signing_keys.list()
    assert listed.revoked_at == later(30)
