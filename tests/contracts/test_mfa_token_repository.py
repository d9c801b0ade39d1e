"""MfaTokenRepository: the token that links a log-in's password step to its second step is
spent once, and burnt by its fifth wrong code, the same everywhere."""

from __future__ import annotations

import uuid
from dataclasses import replace

from bastion.mfa.model import MFA_TOKEN_MAX_WRONG_CODES, MfaToken, new_mfa_token
from bastion.storage import UnitOfWorkFactory
from tests.contracts.races import committed, in_parallel
from tests.contracts.rows import NOW, stored_user

TTL = 300


async def stored_token(
    uow: UnitOfWorkFactory, *, remember_me: bool = False, after: MfaToken | None = None
) -> MfaToken:
    """A token of a new user's, created now or at the moment ``after`` expires."""
    user = await stored_user(uow)
    created = after.expires_at if after else NOW
    token = new_mfa_token(uuid.uuid4().hex * 2, user.id, remember_me, "state-1", created, TTL)
    await committed(uow, lambda work: work.mfa_tokens.add(token))
    return token


async def test_an_mfa_token_is_spent_once_and_returns_what_the_password_step_stored(
    uow: UnitOfWorkFactory,
) -> None:
    token = await stored_token(uow, remember_me=True)
    async with uow(read_only=True) as work:
        assert await work.mfa_tokens.get(token.token_hash) == token
        assert await work.mfa_tokens.get("0" * 64) is None

    results = await in_parallel(uow, lambda work: work.mfa_tokens.spend(token.token_hash, NOW))
    assert [result for result in results if result is not None] == [replace(token, used_at=NOW)]
    async with uow(read_only=True) as work:
        assert await work.mfa_tokens.get(token.token_hash) == replace(token, used_at=NOW)


async def test_an_expired_or_unknown_mfa_token_cannot_be_spent(uow: UnitOfWorkFactory) -> None:
    token = await stored_token(uow)
    expired = token.expires_at
    assert (
        await committed(uow, lambda work: work.mfa_tokens.spend(token.token_hash, expired)) is None
    )
    assert await committed(uow, lambda work: work.mfa_tokens.spend("0" * 64, NOW)) is None
    assert (
        await committed(uow, lambda work: work.mfa_tokens.count_wrong_code("0" * 64, NOW)) is None
    )


async def test_wrong_codes_are_counted_until_the_token_is_burnt(uow: UnitOfWorkFactory) -> None:
    token = await stored_token(uow)
    counts = await in_parallel(
        uow,
        lambda work: work.mfa_tokens.count_wrong_code(token.token_hash, NOW),
        times=MFA_TOKEN_MAX_WRONG_CODES + 2,
    )
    assert sorted(count for count in counts if count is not None) == list(
        range(1, MFA_TOKEN_MAX_WRONG_CODES + 1)
    )
    assert await committed(uow, lambda work: work.mfa_tokens.spend(token.token_hash, NOW)) is None
    async with uow(read_only=True) as work:
        burnt = await work.mfa_tokens.get(token.token_hash)
    assert burnt == replace(token, wrong_codes=MFA_TOKEN_MAX_WRONG_CODES)


async def test_a_spent_token_counts_no_wrong_code(uow: UnitOfWorkFactory) -> None:
    token = await stored_token(uow)
    await committed(uow, lambda work: work.mfa_tokens.spend(token.token_hash, NOW))
    assert (
        await committed(uow, lambda work: work.mfa_tokens.count_wrong_code(token.token_hash, NOW))
        is None
    )


async def test_adding_an_mfa_token_forgets_the_expired_ones(uow: UnitOfWorkFactory) -> None:
    old = await stored_token(uow)
    fresh = await stored_token(uow, after=old)
    async with uow(read_only=True) as work:
        assert await work.mfa_tokens.get(old.token_hash) is None
        assert await work.mfa_tokens.get(fresh.token_hash) == fresh
