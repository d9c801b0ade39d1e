"""The contract of the second-factor repositories, on SQLite and PostgreSQL.

Whatever must happen once is one conditional statement: of parallel attempts on separate
connections, exactly one wins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services, build
from bastion.mfa.model import (
    MFA_TOKEN_MAX_WRONG_CODES,
    PENDING_TOTP_LIFETIME,
    ChallengePurpose,
    WebAuthnCredential,
    new_challenge,
    new_mfa_token,
    new_totp_factor,
)
from bastion.storage import UnitOfWork
from tests.support import STRONG_PASSWORD, SmtpServer, make_settings, random_email

T = TypeVar("T")
PARALLEL = 8


@pytest.fixture
async def services(database_url: str, smtp: SmtpServer) -> AsyncIterator[Services]:
    built = build(make_settings(database_url, smtp.url))
    try:
        yield built
    finally:
        built.hasher.close()
        await built.engine.dispose()


async def a_user(services: Services) -> uuid.UUID:
    user = await services.accounts.create_user(random_email("mfa"), STRONG_PASSWORD, Role.USER)
    return user.id


async def committed(services: Services, operation: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async with services.uow() as uow:
        result = await operation(uow)
        await uow.commit()
    return result


async def in_parallel(
    services: Services, operation: Callable[[UnitOfWork], Awaitable[T]], times: int = PARALLEL
) -> list[T]:
    """``operation`` run ``times`` at once, each in its own unit of work (connection)."""
    return list(await asyncio.gather(*(committed(services, operation) for _ in range(times))))


def winners(results: list[object]) -> int:
    return sum(1 for result in results if result not in (False, None))


def a_credential(user_id: uuid.UUID, services: Services, **changes: Any) -> WebAuthnCredential:
    credential = WebAuthnCredential(
        id=uuid.uuid4(),
        user_id=user_id,
        name="Blue key",
        credential_id=uuid.uuid4().bytes + b"-credential",
        public_key=b"\xa5\x01\x02cose-key",
        sign_count=0,
        transports=("usb", "nfc"),
        aaguid="00000000-0000-0000-0000-000000000000",
        backup_eligible=False,
        backup_state=False,
        passkey=False,
        created_at=services.clock.now(),
    )
    return replace(credential, **changes)


async def test_a_totp_factor_is_stored_with_its_sealed_secret_and_read_back(
    services: Services,
) -> None:
    user_id = await a_user(services)
    factor = new_totp_factor(user_id, "Phone", b"\x00sealed\xff", services.clock.now())
    await committed(services, lambda uow: uow.mfa_factors.add_totp(factor))

    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_factors.get(user_id, factor.id) == factor
        assert await uow.mfa_factors.of_user(user_id) == [factor]
        assert await uow.mfa_factors.get(uuid.uuid4(), factor.id) is None


async def test_a_webauthn_credential_is_found_by_its_credential_id_whoever_asks(
    services: Services,
) -> None:
    user_id = await a_user(services)
    credential = a_credential(user_id, services)
    await committed(services, lambda uow: uow.mfa_factors.add_webauthn(credential))

    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_factors.credential(credential.credential_id) == credential
        assert await uow.mfa_factors.credential(b"unknown") is None
        assert await uow.mfa_factors.get(user_id, credential.id) == credential


async def test_a_users_factors_are_listed_oldest_first_pending_ones_included(
    services: Services,
) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    older = a_credential(user_id, services, created_at=now - timedelta(minutes=1))
    newer = new_totp_factor(user_id, "Phone", b"s", now)

    async def add(uow: UnitOfWork) -> None:
        await uow.mfa_factors.add_totp(newer)
        await uow.mfa_factors.add_webauthn(older)

    await committed(services, add)
    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_factors.of_user(user_id) == [older, newer]
        assert await uow.mfa_factors.of_user(await a_user(services)) == []


async def test_a_pending_totp_factor_is_confirmed_once_and_not_after_it_lapsed(
    services: Services,
) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    factor = new_totp_factor(user_id, "Phone", b"s", now)
    lapsing = new_totp_factor(user_id, "Old", b"s", now - PENDING_TOTP_LIFETIME)

    async def add(uow: UnitOfWork) -> None:
        await uow.mfa_factors.add_totp(factor)
        await uow.mfa_factors.add_totp(lapsing)

    await committed(services, add)
    window = now - PENDING_TOTP_LIFETIME
    results = await in_parallel(
        services, lambda uow: uow.mfa_factors.confirm_totp(factor.id, 7, now, window)
    )
    assert winners(results) == 1
    lapsed = await committed(
        services, lambda uow: uow.mfa_factors.confirm_totp(lapsing.id, 7, now, window)
    )
    assert lapsed is False
    async with services.uow(read_only=True) as uow:
        confirmed = await uow.mfa_factors.get(user_id, factor.id)
    assert confirmed == replace(factor, confirmed_at=now, last_used_at=now, last_step=7)


async def confirmed_totp(services: Services, user_id: uuid.UUID, step: int) -> uuid.UUID:
    now = services.clock.now()
    factor = new_totp_factor(user_id, "Phone", b"s", now)

    async def add(uow: UnitOfWork) -> None:
        await uow.mfa_factors.add_totp(factor)
        await uow.mfa_factors.confirm_totp(factor.id, step, now, now - PENDING_TOTP_LIFETIME)

    await committed(services, add)
    return factor.id


async def test_a_totp_step_is_accepted_once_and_only_after_the_last_one(
    services: Services,
) -> None:
    factor_id = await confirmed_totp(services, await a_user(services), step=100)
    now = services.clock.now()

    def advance(step: int) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda uow: uow.mfa_factors.advance_totp_step(factor_id, step, now)

    assert await committed(services, advance(100)) is False
    assert await committed(services, advance(99)) is False
    assert winners(await in_parallel(services, advance(101))) == 1
    assert await committed(services, advance(102)) is True


async def test_a_pending_totp_factor_accepts_no_step(services: Services) -> None:
    user_id = await a_user(services)
    factor = new_totp_factor(user_id, "Phone", b"s", services.clock.now())
    await committed(services, lambda uow: uow.mfa_factors.add_totp(factor))
    now = services.clock.now()
    assert not await committed(
        services, lambda uow: uow.mfa_factors.advance_totp_step(factor.id, 5, now)
    )


async def test_a_sign_counter_is_stored_only_when_it_increases_or_stays_zero(
    services: Services,
) -> None:
    user_id = await a_user(services)
    counting = a_credential(user_id, services, sign_count=5)
    synced = a_credential(user_id, services, backup_eligible=True, passkey=True)

    async def add(uow: UnitOfWork) -> None:
        await uow.mfa_factors.add_webauthn(counting)
        await uow.mfa_factors.add_webauthn(synced)

    await committed(services, add)
    now = services.clock.now()

    def record(factor_id: uuid.UUID, count: int) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda uow: uow.mfa_factors.record_assertion(factor_id, count, True, now)

    assert await committed(services, record(counting.id, 5)) is False
    assert await committed(services, record(counting.id, 4)) is False
    assert winners(await in_parallel(services, record(counting.id, 6))) == 1
    assert await committed(services, record(counting.id, 0)) is False
    assert await committed(services, record(synced.id, 0)) is True
    assert await committed(services, record(synced.id, 0)) is True
    async with services.uow(read_only=True) as uow:
        stored = await uow.mfa_factors.credential(counting.credential_id)
    assert stored is not None
    assert (stored.sign_count, stored.backup_state, stored.last_used_at) == (6, True, now)


async def test_factors_are_renamed_and_deleted_only_by_their_owner(services: Services) -> None:
    user_id, stranger = await a_user(services), await a_user(services)
    credential = a_credential(user_id, services)
    await committed(services, lambda uow: uow.mfa_factors.add_webauthn(credential))

    assert not await committed(
        services, lambda uow: uow.mfa_factors.rename(stranger, credential.id, "Mine")
    )
    assert await committed(
        services, lambda uow: uow.mfa_factors.rename(user_id, credential.id, "Red key")
    )
    assert (
        await committed(services, lambda uow: uow.mfa_factors.delete(stranger, [credential.id]))
        == 0
    )
    assert await committed(services, lambda uow: uow.mfa_factors.delete(user_id, [])) == 0
    async with services.uow(read_only=True) as uow:
        renamed = await uow.mfa_factors.get(user_id, credential.id)
    assert renamed == replace(credential, name="Red key")

    assert (
        await committed(services, lambda uow: uow.mfa_factors.delete(user_id, [credential.id])) == 1
    )
    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_factors.credential(credential.credential_id) is None
        assert await uow.mfa_factors.of_user(user_id) == []


async def test_a_recovery_code_works_once_and_only_for_its_owner(services: Services) -> None:
    user_id, stranger = await a_user(services), await a_user(services)
    now = services.clock.now()
    digests = [f"{index:064x}" for index in range(10)]
    await committed(services, lambda uow: uow.recovery_codes.replace(user_id, digests, now))

    assert not await committed(
        services, lambda uow: uow.recovery_codes.use(stranger, digests[0], now)
    )
    assert (
        winners(
            await in_parallel(
                services, lambda uow: uow.recovery_codes.use(user_id, digests[0], now)
            )
        )
        == 1
    )
    assert not await committed(services, lambda uow: uow.recovery_codes.use(user_id, "f" * 64, now))
    async with services.uow(read_only=True) as uow:
        assert await uow.recovery_codes.remaining(user_id) == 9
        assert await uow.recovery_codes.remaining(stranger) == 0


async def test_a_new_set_of_recovery_codes_replaces_the_previous_one(services: Services) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    old, new = ["a" * 64, "b" * 64], ["c" * 64]
    await committed(services, lambda uow: uow.recovery_codes.replace(user_id, old, now))
    await committed(services, lambda uow: uow.recovery_codes.replace(user_id, new, now))

    assert not await committed(services, lambda uow: uow.recovery_codes.use(user_id, old[1], now))
    async with services.uow(read_only=True) as uow:
        assert await uow.recovery_codes.remaining(user_id) == 1
    await committed(services, lambda uow: uow.recovery_codes.delete_all(user_id))
    assert not await committed(services, lambda uow: uow.recovery_codes.use(user_id, new[0], now))


async def test_a_webauthn_challenge_is_spent_once_for_its_purpose_while_it_lives(
    services: Services,
) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    challenge = new_challenge(
        uuid.uuid4().bytes, ChallengePurpose.REGISTRATION, user_id, now, passkey=True
    )
    await committed(services, lambda uow: uow.webauthn_challenges.add(challenge))
    key = challenge.challenge_hash

    wrong_purpose = ChallengePurpose.SECOND_STEP
    assert (
        await committed(
            services, lambda uow: uow.webauthn_challenges.spend(key, wrong_purpose, now)
        )
        is None
    )
    results = await in_parallel(
        services, lambda uow: uow.webauthn_challenges.spend(key, challenge.purpose, now)
    )
    assert [result for result in results if result is not None] == [challenge]


async def test_an_expired_challenge_cannot_be_spent_and_is_forgotten_by_the_next_one(
    services: Services,
) -> None:
    now = services.clock.now()
    old = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, now)
    await committed(services, lambda uow: uow.webauthn_challenges.add(old))
    later = old.expires_at

    assert (
        await committed(
            services,
            lambda uow: uow.webauthn_challenges.spend(old.challenge_hash, old.purpose, later),
        )
        is None
    )
    fresh = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, later)
    await committed(services, lambda uow: uow.webauthn_challenges.add(fresh))
    # Forgotten: even a clock turned back no longer finds it.
    assert (
        await committed(
            services,
            lambda uow: uow.webauthn_challenges.spend(old.challenge_hash, old.purpose, now),
        )
        is None
    )


async def test_a_challenge_is_spent_by_a_single_statement_unit_of_work(services: Services) -> None:
    now = services.clock.now()
    challenge = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, now)
    await committed(services, lambda uow: uow.webauthn_challenges.add(challenge))
    async with services.uow(single_statement=True) as uow:
        spent = await uow.webauthn_challenges.spend(
            challenge.challenge_hash, challenge.purpose, now
        )
        await uow.commit()
    assert spent == challenge


async def test_an_mfa_token_is_spent_once_and_returns_what_the_password_step_stored(
    services: Services,
) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    token = new_mfa_token(uuid.uuid4().hex * 2, user_id, True, "state-1", now, 300)
    await committed(services, lambda uow: uow.mfa_tokens.add(token))

    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_tokens.get(token.token_hash) == token
    results = await in_parallel(services, lambda uow: uow.mfa_tokens.spend(token.token_hash, now))
    assert [result for result in results if result is not None] == [replace(token, used_at=now)]


async def test_an_expired_mfa_token_cannot_be_spent(services: Services) -> None:
    now = services.clock.now()
    token = new_mfa_token(uuid.uuid4().hex * 2, await a_user(services), False, "s", now, 300)
    await committed(services, lambda uow: uow.mfa_tokens.add(token))
    assert (
        await committed(
            services, lambda uow: uow.mfa_tokens.spend(token.token_hash, token.expires_at)
        )
        is None
    )


async def test_wrong_codes_are_counted_until_the_token_is_burnt(services: Services) -> None:
    now = services.clock.now()
    token = new_mfa_token(uuid.uuid4().hex * 2, await a_user(services), False, "s", now, 300)
    await committed(services, lambda uow: uow.mfa_tokens.add(token))

    counts = await in_parallel(
        services,
        lambda uow: uow.mfa_tokens.count_wrong_code(token.token_hash, now),
        times=MFA_TOKEN_MAX_WRONG_CODES + 2,
    )
    assert sorted(count for count in counts if count is not None) == list(
        range(1, MFA_TOKEN_MAX_WRONG_CODES + 1)
    )
    assert (
        await committed(services, lambda uow: uow.mfa_tokens.spend(token.token_hash, now)) is None
    )


async def test_adding_an_mfa_token_forgets_the_expired_ones(services: Services) -> None:
    user_id = await a_user(services)
    now = services.clock.now()
    old = new_mfa_token(uuid.uuid4().hex * 2, user_id, False, "s", now, 300)
    await committed(services, lambda uow: uow.mfa_tokens.add(old))
    fresh = new_mfa_token(uuid.uuid4().hex * 2, user_id, False, "s", old.expires_at, 300)
    await committed(services, lambda uow: uow.mfa_tokens.add(fresh))
    async with services.uow(read_only=True) as uow:
        assert await uow.mfa_tokens.get(old.token_hash) is None
        assert await uow.mfa_tokens.get(fresh.token_hash) == fresh
