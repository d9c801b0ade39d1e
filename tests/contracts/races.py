"""Running a storage operation in a unit of work of its own, alone or many at once: whatever
must happen once is one conditional statement, so of parallel attempts exactly one wins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bastion.storage import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")
PARALLEL = 8
Operation = Callable[[UnitOfWork], Awaitable[T]]


async def committed(uow: UnitOfWorkFactory, operation: Operation[T]) -> T:
    async with uow() as work:
        result = await operation(work)
        await work.commit()
    return result


async def in_parallel(
    uow: UnitOfWorkFactory, operation: Operation[T], times: int = PARALLEL
) -> list[T]:
    """``operation`` run ``times`` at once, each in its own unit of work (connection)."""
    return list(await asyncio.gather(*(committed(uow, operation) for _ in range(times))))


def winners(results: list[object]) -> int:
    return sum(1 for result in results if result not in (False, None))
