"""OneTimeTokenRepository (verification and reset tokens): the same behaviour everywhere."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bastion.accounts.ports import OneTimeTokenRepository
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from tests.contracts.rows import a_token, later, stored_user

KINDS = ["verification_tokens", "reset_tokens"]


def tokens_of(work: UnitOfWork, kind: str) -> OneTimeTokenRepository:
    repository: OneTimeTokenRepository = getattr(work, kind)
    return repository


@pytest.mark.parametrize("kind", KINDS)
async def test_an_added_token_is_found_by_its_hash(uow: UnitOfWorkFactory, kind: str) -> None:
    user = await stored_user(uow)
    token = a_token(user.id)
    async with uow() as work:
        await tokens_of(work, kind).add(token)
        await work.commit()
    async with uow(read_only=True) as work:
        assert await tokens_of(work, kind).get(token.token_hash) == token
        assert await tokens_of(work, kind).get("f" * 64) is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_token_is_spent_once(uow: UnitOfWorkFactory, kind: str) -> None:
    user = await stored_user(uow)
    token = a_token(user.id)
    async with uow() as work:
        await tokens_of(work, kind).add(token)
        await work.commit()
    async with uow() as work:
        assert await tokens_of(work, kind).spend(token.token_hash, later(5))
        assert not await tokens_of(work, kind).spend(token.token_hash, later(6))
        assert not await tokens_of(work, kind).spend("f" * 64, later(6))
        await work.commit()
    async with uow(read_only=True) as work:
        assert await tokens_of(work, kind).get(token.token_hash) == replace(token, used_at=later(5))


@pytest.mark.parametrize("kind", KINDS)
async def test_spending_all_of_a_users_tokens_spares_other_users_and_spent_ones(
    uow: UnitOfWorkFactory, kind: str
) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    first, second, spent, others = (
        a_token(user.id),
        a_token(user.id),
        replace(a_token(user.id), used_at=later(1)),
        a_token(other.id),
    )
    async with uow() as work:
        for token in (first, second, spent, others):
            await tokens_of(work, kind).add(token)
        await tokens_of(work, kind).spend_all_for_user(user.id, later(9))
        await work.commit()
    async with uow(read_only=True) as work:
        repository = tokens_of(work, kind)
        assert (await repository.get(first.token_hash)) == replace(first, used_at=later(9))
        assert (await repository.get(second.token_hash)) == replace(second, used_at=later(9))
        assert (await repository.get(spent.token_hash)) == spent
        assert (await repository.get(others.token_hash)) == others


async def test_verification_and_reset_tokens_are_kept_apart(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    token = a_token(user.id)
    async with uow() as work:
        await work.verification_tokens.add(token)
        await work.commit()
    async with uow() as work:
        assert await work.reset_tokens.get(token.token_hash) is None
        assert not await work.reset_tokens.spend(token.token_hash, later(1))
