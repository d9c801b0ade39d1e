"""FactorRepository: TOTP factors and WebAuthn credentials, the same everywhere.

Confirming a TOTP factor, accepting a TOTP step and storing a sign counter are each one
conditional statement in SQL: of parallel attempts, exactly one wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from bastion.mfa.model import PENDING_TOTP_LIFETIME, TotpFactor, new_totp_factor
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from tests.contracts.races import committed, in_parallel, winners
from tests.contracts.rows import NOW, a_credential, stored_user

LAPSED = NOW - PENDING_TOTP_LIFETIME  # pending factors created at or before this have lapsed


async def test_a_totp_factor_is_stored_with_its_sealed_secret_and_read_back(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    factor = new_totp_factor(user.id, "Phone", b"\x00sealed\xff", NOW)
    await committed(uow, lambda work: work.mfa_factors.add_totp(factor))

    async with uow(read_only=True) as work:
        assert await work.mfa_factors.get(user.id, factor.id) == factor
        assert await work.mfa_factors.of_user(user.id) == [factor]
        assert await work.mfa_factors.get(uuid.uuid4(), factor.id) is None


async def test_a_webauthn_credential_is_found_by_its_credential_id_whoever_asks(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    credential = a_credential(user.id)
    await committed(uow, lambda work: work.mfa_factors.add_webauthn(credential))

    async with uow(read_only=True) as work:
        assert await work.mfa_factors.credential(credential.credential_id) == credential
        assert await work.mfa_factors.credential(b"unknown") is None
        assert await work.mfa_factors.get(user.id, credential.id) == credential


async def test_a_users_factors_are_listed_oldest_first_pending_ones_included(
    uow: UnitOfWorkFactory,
) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    older = a_credential(user.id, created_at=NOW - timedelta(minutes=1))
    newer = new_totp_factor(user.id, "Phone", b"s", NOW)

    async def add(work: UnitOfWork) -> None:
        await work.mfa_factors.add_totp(newer)
        await work.mfa_factors.add_webauthn(older)

    await committed(uow, add)
    async with uow(read_only=True) as work:
        assert await work.mfa_factors.of_user(user.id) == [older, newer]
        assert await work.mfa_factors.of_user(user.id, for_update=True) == [older, newer]
        assert await work.mfa_factors.of_user(other.id) == []


async def test_a_pending_totp_factor_is_confirmed_once_and_not_after_it_lapsed(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    factor = new_totp_factor(user.id, "Phone", b"s", NOW)
    lapsing = new_totp_factor(user.id, "Old", b"s", LAPSED)
    credential = a_credential(user.id)

    async def add(work: UnitOfWork) -> None:
        await work.mfa_factors.add_totp(factor)
        await work.mfa_factors.add_totp(lapsing)
        await work.mfa_factors.add_webauthn(credential)

    await committed(uow, add)

    def confirm(factor_id: uuid.UUID) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda work: work.mfa_factors.confirm_totp(factor_id, 7, NOW, LAPSED)

    assert winners(await in_parallel(uow, confirm(factor.id))) == 1
    assert await committed(uow, confirm(lapsing.id)) is False
    assert await committed(uow, confirm(credential.id)) is False
    assert await committed(uow, confirm(uuid.uuid4())) is False
    async with uow(read_only=True) as work:
        confirmed = await work.mfa_factors.get(user.id, factor.id)
        assert await work.mfa_factors.get(user.id, lapsing.id) == lapsing
    assert confirmed == replace(factor, confirmed_at=NOW, last_used_at=NOW, last_step=7)


async def confirmed_totp(uow: UnitOfWorkFactory, user_id: uuid.UUID, step: int) -> TotpFactor:
    """A TOTP factor confirmed with a code of ``step``, as stored."""
    factor = new_totp_factor(user_id, "Phone", b"s", NOW)

    async def add(work: UnitOfWork) -> None:
        await work.mfa_factors.add_totp(factor)
        await work.mfa_factors.confirm_totp(factor.id, step, NOW, LAPSED)

    await committed(uow, add)
    return replace(factor, confirmed_at=NOW, last_used_at=NOW, last_step=step)


async def test_a_totp_step_is_accepted_once_and_only_after_the_last_one(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    confirmed = await confirmed_totp(uow, user.id, step=100)
    used = NOW + timedelta(minutes=1)

    def advance(step: int) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda work: work.mfa_factors.advance_totp_step(confirmed.id, step, used)

    assert await committed(uow, advance(100)) is False
    assert await committed(uow, advance(99)) is False
    assert winners(await in_parallel(uow, advance(101))) == 1
    assert await committed(uow, advance(102)) is True
    async with uow(read_only=True) as work:
        advanced = await work.mfa_factors.get(user.id, confirmed.id)
    assert advanced == replace(confirmed, last_step=102, last_used_at=used)


async def test_only_a_confirmed_totp_factor_accepts_a_step(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    pending = new_totp_factor(user.id, "Phone", b"s", NOW)
    credential = a_credential(user.id)

    async def add(work: UnitOfWork) -> None:
        await work.mfa_factors.add_totp(pending)
        await work.mfa_factors.add_webauthn(credential)

    await committed(uow, add)
    for factor_id in (pending.id, credential.id, uuid.uuid4()):
        assert not await committed(
            uow, lambda work, f=factor_id: work.mfa_factors.advance_totp_step(f, 5, NOW)
        )
    async with uow(read_only=True) as work:
        # Created at the same moment: listed in the order of their ids.
        expected = sorted([pending, credential], key=lambda factor: factor.id)
        assert await work.mfa_factors.of_user(user.id) == expected


async def test_a_sign_counter_is_stored_only_when_it_increases_or_stays_zero(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    counting = a_credential(user.id, sign_count=5)
    synced = a_credential(user.id, backup_eligible=True, passkey=True)
    totp = await confirmed_totp(uow, user.id, step=1)

    async def add(work: UnitOfWork) -> None:
        await work.mfa_factors.add_webauthn(counting)
        await work.mfa_factors.add_webauthn(synced)

    await committed(uow, add)
    used = NOW + timedelta(minutes=1)

    def record(factor_id: uuid.UUID, count: int) -> Callable[[UnitOfWork], Awaitable[bool]]:
        return lambda work: work.mfa_factors.record_assertion(factor_id, count, True, used)

    assert await committed(uow, record(counting.id, 5)) is False
    assert await committed(uow, record(counting.id, 4)) is False
    assert winners(await in_parallel(uow, record(counting.id, 6))) == 1
    assert await committed(uow, record(counting.id, 0)) is False
    assert await committed(uow, record(synced.id, 0)) is True
    assert await committed(uow, record(synced.id, 0)) is True
    assert await committed(uow, record(totp.id, 1)) is False
    async with uow(read_only=True) as work:
        stored = await work.mfa_factors.credential(counting.credential_id)
        synced_now = await work.mfa_factors.credential(synced.credential_id)
    assert stored == replace(counting, sign_count=6, backup_state=True, last_used_at=used)
    assert synced_now == replace(synced, backup_state=True, last_used_at=used)


async def test_factors_are_renamed_and_deleted_only_by_their_owner(
    uow: UnitOfWorkFactory,
) -> None:
    user, stranger = await stored_user(uow), await stored_user(uow)
    credential = a_credential(user.id)
    await committed(uow, lambda work: work.mfa_factors.add_webauthn(credential))

    assert not await committed(
        uow, lambda work: work.mfa_factors.rename(stranger.id, credential.id, "Mine")
    )
    assert await committed(
        uow, lambda work: work.mfa_factors.rename(user.id, credential.id, "Red key")
    )
    assert (
        await committed(uow, lambda work: work.mfa_factors.delete(stranger.id, [credential.id]))
        == 0
    )
    assert await committed(uow, lambda work: work.mfa_factors.delete(user.id, [])) == 0
    async with uow(read_only=True) as work:
        assert await work.mfa_factors.get(user.id, credential.id) == replace(
            credential, name="Red key"
        )

    deleted = await committed(
        uow, lambda work: work.mfa_factors.delete(user.id, [credential.id, uuid.uuid4()])
    )
    assert deleted == 1
    async with uow(read_only=True) as work:
        assert await work.mfa_factors.credential(credential.credential_id) is None
        assert await work.mfa_factors.of_user(user.id) == []


async def test_a_factor_change_left_uncommitted_is_not_kept(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    confirmed = await confirmed_totp(uow, user.id, step=100)
    async with uow() as work:
        assert await work.mfa_factors.advance_totp_step(confirmed.id, 101, NOW)
        await work.mfa_factors.add_webauthn(a_credential(user.id))
    async with uow(read_only=True) as work:
        assert await work.mfa_factors.of_user(user.id) == [confirmed]
