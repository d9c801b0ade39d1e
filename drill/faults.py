"""The faults of the schedule, and the Bastion server they are inflicted on.

Every fault has a beginning and an end; what lies between is what production would live
through. Blocking work (starting processes, waiting for them) runs in threads, so the client's
event loop keeps sending requests all along.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs, servers
from drill.config import WORKERS
from drill.services import PostgresProxy, PrivateRedis
from drill.sink import Sink

READY_TIMEOUT_SECONDS = 120.0
# What a rolling restart gives the old server to finish its requests (granian's own kill
# timeout is 30 s).
DRAIN_SECONDS = 40.0


class Bastion:
    """`bastion serve --workers 2` on one port; a rolling restart replaces it on the same port."""

    def __init__(self, port: int, env: Mapping[str, str], logs: Path, cwd: Path) -> None:
        self.port = port
        self.env = dict(env)
        self.logs = logs
        self.cwd = cwd
        self.generation = 0
        self.current: servers.Server | None = None
        self._retired: list[servers.Server] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.generation += 1
        log = self.logs / f"bastion-{self.generation}.log"
        server = servers.start_bastion(self.port, self.env, log, self.cwd)
        self.current = server
        servers.wait_ready(server, "/readyz", READY_TIMEOUT_SECONDS)

    def workers(self) -> list[int]:
        if self.current is None or self.current.process.poll() is not None:
            return []
        try:
            return self.current.workers()
        except FileNotFoundError:
            return []

    def kill_worker(self) -> int:
        """SIGKILL the first worker; granian starts a new one in its place."""
        victim = self.workers()[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def wait_for_workers(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while len(self.workers()) < WORKERS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"granian did not bring back {WORKERS} workers")
            time.sleep(0.05)

    def rolling_restart(self) -> None:
        """SIGTERM the whole server and start a new one on the same port at once."""
        old = self.current
        assert old is not None
        os.killpg(old.process.pid, signal.SIGTERM)
        self._retired.append(old)
        # The old server drains in the background; whatever it does, it is gone in time.
        threading.Thread(target=procs.stop, args=(old.process, DRAIN_SECONDS), daemon=True).start()
        self.start()

    def stop(self) -> None:
        for server in [*self._retired, *([self.current] if self.current else [])]:
            server.stop()


@dataclass
class FaultWindow:
    """One fault as it happened: when it began and ended, and when service was back."""

    name: str
    began: float
    ended: float = 0.0
    recovered_after: float | None = None  # seconds from `ended`; None: not within the wait
    notes: list[str] = field(default_factory=list)

    @property
    def workers_down(self) -> bool:
        """Whether this fault takes workers away, so that connections may fail."""
        return self.name in ("worker_killed", "rolling_restart")


@dataclass
class Stage:
    """What the faults act on."""

    bastion: Bastion
    proxy: PostgresProxy
    redis: PrivateRedis
    sink: Sink


async def inflict(name: str, stage: Stage, seconds: float) -> FaultWindow:
    """Begin the fault, hold it for `seconds`, end it; returns its window."""
    window = FaultWindow(name, began=time.monotonic())
    if name == "postgres_restarted":
        await asyncio.to_thread(stage.proxy.command, "down")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(stage.proxy.command, "up")
    elif name == "postgres_partitioned":
        await asyncio.to_thread(stage.proxy.command, "hang")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(stage.proxy.command, "up")
    elif name == "redis_stopped":
        await asyncio.to_thread(stage.redis.stop)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(stage.redis.start)
    elif name == "smtp_down_then_slow":
        await asyncio.to_thread(stage.sink.down)
        await asyncio.sleep(seconds / 2)
        await asyncio.to_thread(stage.sink.slow)
        await asyncio.sleep(seconds / 2)
        await asyncio.to_thread(stage.sink.up)
    elif name == "worker_killed":
        victim = await asyncio.to_thread(stage.bastion.kill_worker)
        window.notes.append(f"SIGKILL to worker {victim}")
        await asyncio.sleep(seconds)
        await asyncio.to_thread(stage.bastion.wait_for_workers)
    elif name == "rolling_restart":
        await asyncio.to_thread(stage.bastion.rolling_restart)
        # The fault lasts at least its slot, and until the new server is ready.
        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - window.began)))
    else:
        raise ValueError(f"unknown fault {name!r}")
    window.ended = time.monotonic()
    return window
