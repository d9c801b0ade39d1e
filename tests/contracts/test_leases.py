"""Leases: the same behaviour everywhere, and one holder at a time even when asked at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import later

LEASE = "contract-lease"
TTL = timedelta(seconds=60)


async def acquire(uow: UnitOfWorkFactory, holder: str, at: float, name: str = LEASE) -> bool:
    async with uow(single_statement=True) as work:
        taken = await work.leases.acquire(name, holder, TTL, later(at))
        await work.commit()
    return taken


async def release(uow: UnitOfWorkFactory, holder: str, name: str = LEASE) -> None:
    async with uow(single_statement=True) as work:
        await work.leases.release(name, holder)
        await work.commit()


async def test_a_lease_nobody_holds_is_taken(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0)


async def test_a_held_lease_is_refused_to_others_until_it_lapses(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0)
    assert not await acquire(uow, "b", at=59)
    assert await acquire(uow, "b", at=60)
    assert not await acquire(uow, "a", at=61)


async def test_its_holder_takes_it_again_which_renews_it(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0)
    assert await acquire(uow, "a", at=50)
    assert not await acquire(uow, "b", at=100)
    assert await acquire(uow, "b", at=110)


async def test_a_released_lease_is_free_at_once(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0)
    await release(uow, "a")
    assert await acquire(uow, "b", at=1)


async def test_only_its_holder_releases_it(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0)
    await release(uow, "b")
    assert not await acquire(uow, "b", at=1)


async def test_leases_of_different_names_are_independent(uow: UnitOfWorkFactory) -> None:
    assert await acquire(uow, "a", at=0, name="purge")
    assert await acquire(uow, "b", at=0, name="rotation")
    await release(uow, "a", name="purge")
    assert not await acquire(uow, "a", at=1, name="rotation")


async def test_of_holders_asking_at_once_exactly_one_gets_it(uow: UnitOfWorkFactory) -> None:
    first = await asyncio.gather(*(acquire(uow, f"holder-{n}", at=0) for n in range(6)))
    assert sorted(first) == [False] * 5 + [True]
    # Once it lapses, again exactly one of them takes it over.
    lapsed = await asyncio.gather(*(acquire(uow, f"other-{n}", at=60) for n in range(6)))
    assert sorted(lapsed) == [False] * 5 + [True]
