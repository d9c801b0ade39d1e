"""What the drill watches while it runs, once a second, as an operator's monitoring would:
readiness, the limiter gauge, each worker's memory and PostgreSQL's connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from drill.config import MONITOR_INTERVAL_SECONDS

PROBE_TIMEOUT_SECONDS = 5.0
CONNECTIONS = text(
    "SELECT count(*) AS total, "
    "count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction "
    "FROM pg_stat_activity WHERE datname = :database"
)


@dataclass
class Sample:
    at: float
    ready: int | None  # /readyz status, None without an answer
    limiter_degraded: float | None
    rss_mb: dict[int, float]
    pg_connections: int | None
    pg_idle_in_transaction: int | None


@dataclass
class Monitor:
    base_url: str
    workers: Callable[[], list[int]]
    engine: AsyncEngine  # on the shared server, not through the drill's proxy
    database: str
    samples: list[Sample] = field(default_factory=list)
    # When each worker process was first seen: its warm-up starts there.
    first_seen: dict[int, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.samples.append(await self.sample())
            elapsed = time.monotonic() - started
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, MONITOR_INTERVAL_SECONDS - elapsed))
            except TimeoutError:
                pass

    async def sample(self) -> Sample:
        now = time.monotonic()
        pids = self.workers()
        for pid in pids:
            self.first_seen.setdefault(pid, now)
        ready, degraded = await asyncio.gather(self.readiness(), self.limiter_degraded())
        connections, idle = await self._pg_connections()
        return Sample(
            at=now,
            ready=ready,
            limiter_degraded=degraded,
            rss_mb={pid: rss for pid in pids if (rss := rss_mb(pid)) is not None},
            pg_connections=connections,
            pg_idle_in_transaction=idle,
        )

    async def readiness(self) -> int | None:
        # A new connection each time, so that any worker may answer, as for a load balancer.
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
                return (await client.get(f"{self.base_url}/readyz")).status_code
        except httpx.HTTPError:
            return None

    async def limiter_degraded(self) -> float | None:
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
                response = await client.get(f"{self.base_url}/metrics")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "bastion_limiter_degraded":
                    return float(sample.value)
        return None

    async def _pg_connections(self) -> tuple[int | None, int | None]:
        try:
            async with self.engine.connect() as connection:
                row = (await connection.execute(CONNECTIONS, {"database": self.database})).one()
        except Exception:  # the monitor must outlive anything; a gap in the series says enough
            return None, None
        return int(row.total), int(row.idle_in_transaction)


def rss_mb(pid: int) -> float | None:
    """VmRSS: what the process holds now, in MiB (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None
