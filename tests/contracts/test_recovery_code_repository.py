"""RecoveryCodeRepository: keyed hashes of recovery codes, each spent once, the same
everywhere."""

from __future__ import annotations

from datetime import timedelta

from bastion.storage import UnitOfWorkFactory
from tests.contracts.races import committed, in_parallel, winners
from tests.contracts.rows import NOW, stored_user

DIGESTS = [f"{index:064x}" for index in range(10)]


async def test_a_recovery_code_works_once_and_only_for_its_owner(uow: UnitOfWorkFactory) -> None:
    user, stranger = await stored_user(uow), await stored_user(uow)
    await committed(uow, lambda work: work.recovery_codes.replace(user.id, DIGESTS, NOW))

    assert not await committed(
        uow, lambda work: work.recovery_codes.use(stranger.id, DIGESTS[0], NOW)
    )
    used = await in_parallel(uow, lambda work: work.recovery_codes.use(user.id, DIGESTS[0], NOW))
    assert winners(used) == 1
    assert not await committed(uow, lambda work: work.recovery_codes.use(user.id, "f" * 64, NOW))
    async with uow(read_only=True) as work:
        assert await work.recovery_codes.remaining(user.id) == 9
        assert await work.recovery_codes.remaining(stranger.id) == 0


async def test_a_new_set_of_recovery_codes_replaces_the_previous_one(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    old, new = ["a" * 64, "b" * 64], ["c" * 64, "a" * 64]
    await committed(uow, lambda work: work.recovery_codes.replace(user.id, old, NOW))
    assert await committed(uow, lambda work: work.recovery_codes.use(user.id, old[0], NOW))
    later = NOW + timedelta(minutes=1)
    await committed(uow, lambda work: work.recovery_codes.replace(user.id, new, later))

    assert not await committed(uow, lambda work: work.recovery_codes.use(user.id, old[1], later))
    async with uow(read_only=True) as work:
        assert await work.recovery_codes.remaining(user.id) == 2
    # A code of the new set that happens to equal a spent one of the old set is new, unused.
    assert await committed(uow, lambda work: work.recovery_codes.use(user.id, new[1], later))


async def test_deleting_every_recovery_code_of_a_user_spares_the_others(
    uow: UnitOfWorkFactory,
) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    await committed(uow, lambda work: work.recovery_codes.replace(user.id, DIGESTS, NOW))
    await committed(uow, lambda work: work.recovery_codes.replace(other.id, DIGESTS, NOW))

    await committed(uow, lambda work: work.recovery_codes.delete_all(user.id))
    assert not await committed(uow, lambda work: work.recovery_codes.use(user.id, DIGESTS[1], NOW))
    async with uow(read_only=True) as work:
        assert await work.recovery_codes.remaining(user.id) == 0
        assert await work.recovery_codes.remaining(other.id) == len(DIGESTS)


async def test_a_recovery_code_spent_in_a_unit_of_work_left_uncommitted_still_works(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    await committed(uow, lambda work: work.recovery_codes.replace(user.id, DIGESTS, NOW))
    async with uow() as work:
        assert await work.recovery_codes.use(user.id, DIGESTS[0], NOW)
        assert await work.recovery_codes.remaining(user.id) == 9
    assert await committed(uow, lambda work: work.recovery_codes.use(user.id, DIGESTS[0], NOW))
