"""Background tasks under a lease, over in-memory storage: one instance at a time.

The contract suite (``tests/contracts/test_leases.py``) holds the fake leases to the SQL ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from bastion.background.errors import LeaseHeld, LeaseLost
from bastion.background.periodic import OneAtATime, PeriodicTask
from bastion.core.clock import FrozenClock
from bastion.core.errors import StorageUnavailable
from tests.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory

NAME = "test-task"
SHORT_TTL = timedelta(seconds=0.15)


def instance(
    store: FakeUnitOfWorkFactory,
    clock: FrozenClock,
    holder: str,
    ttl: timedelta = timedelta(seconds=60),
) -> OneAtATime:
    return OneAtATime(NAME, store, clock, holder=holder, ttl=ttl)


async def nothing() -> str:
    return "ran"


async def held_by(store: FakeUnitOfWorkFactory, clock: FrozenClock, holder: str) -> None:
    """``holder`` takes the lease, as an instance in the middle of the task would."""
    async with store(single_statement=True) as uow:
        assert await uow.leases.acquire(NAME, holder, timedelta(seconds=60), clock.now())
        await uow.commit()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_while_one_instance_runs_a_task_another_skips_it_and_may_run_it_after() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    a, b = instance(store, clock, "a"), instance(store, clock, "b")
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        await finish.wait()
        return "a ran"

    running = asyncio.create_task(a.run(slow))
    await started.wait()
    with pytest.raises(LeaseHeld):
        await b.run(nothing)
    with pytest.raises(LeaseHeld):
        await a.run(nothing)  # nor twice at once on one instance
    finish.set()
    assert await running == "a ran"
    assert await b.run(nothing) == "ran"
    assert store.tables.leases == {}


async def test_a_failing_job_gives_the_lease_back() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()

    async def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await instance(store, clock, "a").run(failing)
    assert await instance(store, clock, "b").run(nothing) == "ran"


async def test_the_lease_of_an_instance_that_died_lapses_after_its_ttl() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    await held_by(store, clock, "dead")
    survivor = instance(store, clock, "survivor")
    clock.advance(59)
    with pytest.raises(LeaseHeld):
        await survivor.run(nothing)
    clock.advance(1)
    assert await survivor.run(nothing) == "ran"


async def test_the_lease_is_renewed_while_a_long_job_runs() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    other = instance(store, clock, "other")

    async def long_job() -> str:
        for _ in range(4):
            # Time passes beyond the first lease's end; the holder keeps renewing it.
            clock.advance(0.1)
            await asyncio.sleep(0.1)
            with pytest.raises(LeaseHeld):
                await other.run(nothing)
        return "done"

    assert await instance(store, clock, "a", SHORT_TTL).run(long_job) == "done"


async def test_a_job_whose_lease_another_instance_took_over_is_stopped() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    stopped = asyncio.Event()

    async def stalled() -> None:
        # This instance stalls past its lease, and another instance takes the task over.
        clock.advance(1)
        await held_by(store, clock, "b")
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()

    with pytest.raises(LeaseLost):
        await instance(store, clock, "a", SHORT_TTL).run(stalled)
    assert stopped.is_set()
    assert store.tables.leases[NAME].holder == "b"


async def test_a_periodic_task_first_runs_one_interval_after_it_starts() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    runs: list[str] = []

    async def job() -> None:
        runs.append("ran")

    task = PeriodicTask(instance(store, clock, "a"), job, every=5)
    task.start()
    await asyncio.sleep(0.05)
    await task.stop()
    assert runs == []


async def test_a_periodic_task_runs_each_interval_through_failures_until_stopped() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    runs: list[str] = []

    async def job() -> None:
        runs.append("ran")
        if len(runs) == 1:
            raise RuntimeError("the first round fails; the next ones still come")

    task = PeriodicTask(instance(store, clock, "a"), job, every=0.01)
    task.start()
    await wait_until(lambda: len(runs) >= 3)
    await task.stop()
    after_stop = len(runs)
    await asyncio.sleep(0.05)
    assert len(runs) == after_stop
    assert store.tables.leases == {}


class DownAtFirst:
    """The storage of a database that is unreachable for its first ``outages`` units of work."""

    def __init__(self, store: FakeUnitOfWorkFactory, outages: int) -> None:
        self.store = store
        self.outages = outages

    def __call__(
        self, *, read_only: bool = False, single_statement: bool = False
    ) -> FakeUnitOfWork:
        if self.outages:
            self.outages -= 1
            raise StorageUnavailable()
        return self.store(read_only=read_only, single_statement=single_statement)


async def test_rounds_that_find_the_database_down_are_skipped_until_it_is_back() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    runs: list[str] = []

    async def job() -> None:
        runs.append("ran")

    runner = OneAtATime(NAME, DownAtFirst(store, outages=3), clock, holder="a")
    task = PeriodicTask(runner, job, every=0.01)
    task.start()
    await wait_until(lambda: len(runs) >= 1)
    await task.stop()
    assert store.tables.leases == {}


async def test_instances_running_the_same_periodic_task_never_run_it_at_once() -> None:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    running: list[str] = []
    most_at_once, rounds = 0, 0

    async def job() -> None:
        nonlocal most_at_once, rounds
        running.append("job")
        most_at_once = max(most_at_once, len(running))
        await asyncio.sleep(0.01)
        running.pop()
        rounds += 1

    tasks = [PeriodicTask(instance(store, clock, h), job, every=0.003) for h in "abc"]
    for task in tasks:
        task.start()
    await wait_until(lambda: rounds >= 10)
    for task in tasks:
        await task.stop()
    assert most_at_once == 1
