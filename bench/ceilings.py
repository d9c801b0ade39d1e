"""Ceilings measured in the same run, so results read as ratios, not machine-bound numbers."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

from argon2 import PasswordHasher

from bench.config import ARGON2_MEMORY_COST, ARGON2_PARALLELISM, ARGON2_TIME_COST, PASSWORD


@dataclass(frozen=True)
class HashCeiling:
    """Argon2id verifications per second with every core verifying and nothing else running."""

    processes: int
    seconds: float
    verifications: int
    per_second: float
    time_cost: int
    memory_cost: int
    parallelism: int
    cpu_ms_per_verification: float
    other_cpu_cores: float = 0.0
    attempts: int = 1

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_COST, parallelism=ARGON2_PARALLELISM
    )


def _verify_until(digest: str, seconds: float) -> tuple[int, float, float]:
    """(verifications, wall seconds, CPU seconds) of one process verifying for `seconds`."""
    hasher = _hasher()
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        hasher.verify(digest, PASSWORD)
        count += 1
    return count, time.perf_counter() - started, time.process_time() - cpu_started


def hash_ceiling(seconds: float) -> HashCeiling:
    """One process per core verifying the same hash for `seconds`, without HTTP or a database."""
    processes = os.cpu_count() or 1
    digest = _hasher().hash(PASSWORD)
    # spawn, not fork: the parent may hold threads (httpx, asyncio) that fork would copy badly.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        runs = list(pool.map(_verify_until, [digest] * processes, [seconds] * processes))
    verifications = sum(count for count, _, _ in runs)
    per_second = sum(count / elapsed for count, elapsed, _ in runs)
    cpu_seconds = sum(cpu for _, _, cpu in runs)
    return HashCeiling(
        processes=processes,
        seconds=seconds,
        verifications=verifications,
        per_second=round(per_second, 2),
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_COST,
        parallelism=ARGON2_PARALLELISM,
        cpu_ms_per_verification=round(cpu_seconds * 1000 / verifications, 3),
    )
