"""`python -m drill.run`: Bastion under load while PostgreSQL, Redis, SMTP and its workers fail,
judged by its client. See drill/README.md.

Set-up: a database of the drill's own on the local PostgreSQL, reached through a proxy the drill
breaks; a private redis-server; an SMTP sink; `bastion serve --workers 2`. Then a population
signs up, the mixed workload's capacity is measured, and the schedule runs at a share of it:
a quiet baseline, then each fault with a recovery after it. Afterwards every acknowledged fact
is checked, and the outcome written to drill/results/latest.json (and drill/RESULTS.md).
Everything started is stopped, and the database dropped, however the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bastion.adapters.sql import tables
from bench import procs, services
from bench import report as bench_report
from bench.config import LIFTED_LIMITS, MAIN_VENV, POSTGRES_ADMIN_URL
from bench.servers import clean_environment
from drill import judge, report
from drill.config import FAULTS, PASSWORD, PROFILES, RESULTS_MD, Profile, default_output
from drill.faults import Bastion, FaultWindow, Stage, inflict
from drill.ledger import Ledger, Verdict
from drill.monitor import Monitor
from drill.services import PostgresProxy, PrivateRedis
from drill.sink import Sink
from drill.workload import Workload

log = logging.getLogger("drill")
POSTGRES_PORT = 5432
# After a fault ends, how long the probes look for recovery before the next fault may begin.
RECOVERY_WAIT_SECONDS = 60.0
PROBE_INTERVAL_SECONDS = 0.1
# Probe rounds in a row that must all succeed: each on new connections, so any worker answers.
PROBES_IN_A_ROW = 3
DRAIN_SECONDS = 35.0
# A request that needs the database and writes to it, for an address nobody has.
CANARY_WRITE = {"email": "nobody@drill.example.org"}


@dataclass(frozen=True)
class Schedule:
    baseline: float
    fault: float
    recovery: float

    @classmethod
    def of(
        cls, profile: Profile, minutes: float, faults: int, fault_seconds: float | None = None
    ) -> Schedule:
        """One slot for the baseline and one per fault: the fault takes about a third of it
        (within the profile's bounds, unless `fault_seconds` says), its recovery the rest."""
        slot = minutes * 60 / (faults + 1)
        low, high = profile.fault_seconds
        fault = fault_seconds or min(high, max(low, slot * 0.35))
        return cls(baseline=slot, fault=fault, recovery=max(slot - fault, 1.0))


class Drill:
    """One run: the stage it builds, what it records, and the cleanup it owes."""

    def __init__(
        self,
        profile: Profile,
        minutes: float,
        faults: tuple[str, ...],
        fault_seconds: float | None,
        database: str,
        logs: Path,
    ) -> None:
        self.profile = profile
        self.minutes = minutes
        self.fault_names = faults
        self.database = database
        self.logs = logs
        self.run_id = secrets.token_hex(4)
        self.ledger = Ledger()
        self.faults: list[FaultWindow] = []
        self.schedule = Schedule.of(profile, minutes, len(faults), fault_seconds)

    def build(self, cleanup: contextlib.ExitStack) -> Stage:
        self.logs.mkdir(parents=True, exist_ok=True)
        scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="drill-")))
        services.recreate_database(self.database)
        cleanup.callback(services.drop_database, self.database)
        redis = PrivateRedis(procs.free_port(), scratch, self.logs / "redis.log")
        redis.start()
        cleanup.callback(redis.stop)
        proxy = PostgresProxy(procs.free_port(), POSTGRES_PORT, self.logs / "proxy.log")
        proxy.start()
        cleanup.callback(proxy.stop)
        sink = Sink(procs.free_port())
        sink.up()
        cleanup.callback(sink.down)
        port = procs.free_port()
        bastion = Bastion(port, self._environment(port, proxy, redis, sink), self.logs, scratch)
        cleanup.callback(bastion.stop)
        bastion.start()
        with ThreadPoolExecutor(2) as pool:
            created = [
                pool.submit(_create_user, email, role, bastion.env, scratch)
                for email, role in ((self.admin_email, "admin"), (self.canary_email, "user"))
            ]
            for creation in created:
                creation.result()
        return Stage(bastion=bastion, proxy=proxy, redis=redis, sink=sink)

    @property
    def admin_email(self) -> str:
        return f"admin-{self.run_id}@drill.example.org"

    @property
    def canary_email(self) -> str:
        return f"canary-{self.run_id}@drill.example.org"

    def _environment(
        self, port: int, proxy: PostgresProxy, redis: PrivateRedis, sink: Sink
    ) -> dict[str, str]:
        time_cost, memory_cost, parallelism = self.profile.argon2
        env = {
            "BASTION_ENV": "development",
            "BASTION_DATABASE_URL": (
                f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.listen_port}/{self.database}"
            ),
            "BASTION_REDIS_URL": redis.url,
            "BASTION_SMTP_URL": sink.url,
            "BASTION_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BASTION_COOKIE_SECURE": "false",
            "BASTION_SECRET_KEY": secrets.token_urlsafe(48),
            "BASTION_AUTO_MIGRATE": "true",
            "BASTION_LOG_JSON": "true",
            # The drill's admin signs in with a password.
            "BASTION_MFA_REQUIRED_ROLES": "",
            "BASTION_ARGON2_TIME_COST": str(time_cost),
            "BASTION_ARGON2_MEMORY_COST": str(memory_cost),
            "BASTION_ARGON2_PARALLELISM": str(parallelism),
        }
        # Every request comes from 127.0.0.1: with the default limits the drill would measure 429s.
        env.update({f"BASTION_{name.upper()}": str(value) for name, value in LIFTED_LIMITS.items()})
        return env

    async def run(self, stage: Stage) -> dict[str, Any]:
        profile = self.profile
        bastion = stage.bastion
        engine = create_async_engine(
            services.database_url(self.database), pool_size=2, connect_args={"timeout": 10}
        )
        admin_engine = create_async_engine(POSTGRES_ADMIN_URL, pool_size=1)
        monitor = Monitor(bastion.base_url, bastion.workers, admin_engine, self.database)
        stop_monitor = asyncio.Event()
        monitoring = asyncio.create_task(monitor.run(stop_monitor))
        try:
            admin_token = await _login(bastion.base_url, self.admin_email)
            canary_token = await _login(bastion.base_url, self.canary_email)
            async with Workload(
                bastion.base_url,
                stage.sink.mailbox,
                self.ledger,
                run_id=self.run_id,
                password=PASSWORD,
                admin_token=admin_token,
            ) as workload:
                capacity, rate = await self._size_the_load(workload)
                started = time.monotonic()
                stop = asyncio.Event()
                arrivals = asyncio.create_task(workload.open_loop(rate, stop))
                try:
                    await self._faults(stage, canary_token)
                finally:
                    stop.set()
                    await arrivals
                ended = time.monotonic()
                await workload.drain(DRAIN_SECONDS)
                saturated = workload.saturated
                nobody_free = workload.nobody_free
            log.info("waiting up to %.0f s for every promised email", profile.mail_wait_seconds)
            mail_waited = await self._wait_for_mail(stage.sink)
            stop_monitor.set()
            await monitoring
            judge.judge_connection_errors(self.ledger.records, self.faults)
            findings = await judge.check_facts(
                self.ledger, engine, stage.sink.mailbox, bastion.base_url
            )
            backlog = await _outbox_backlog(engine)
        finally:
            stop_monitor.set()
            with contextlib.suppress(Exception):
                await monitoring
            await engine.dispose()
            await admin_engine.dispose()
        return report.results(
            self,
            started=started,
            ended=ended,
            capacity=capacity,
            rate=rate,
            saturated=saturated,
            nobody_free=nobody_free,
            monitor=monitor,
            findings=findings,
            mail_waited=mail_waited,
            outbox_backlog=backlog,
        )

    async def _size_the_load(self, workload: Workload) -> tuple[float, float]:
        """A population first, then the mixed workload's capacity, closed-loop: the schedule
        runs at the profile's share of it."""
        profile = self.profile
        log.info(
            "population: %.0f s at %.0f steps/s",
            profile.population_seconds,
            profile.population_rate,
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(profile.population_seconds, stop.set)
        await workload.open_loop(profile.population_rate, stop)
        await workload.drain(DRAIN_SECONDS)
        before = sum(1 for r in self.ledger.records if r.verdict is Verdict.OK)
        started = time.monotonic()
        await workload.closed_loop(profile.capacity_concurrency, started + profile.capacity_seconds)
        elapsed = time.monotonic() - started
        done = sum(1 for r in self.ledger.records if r.verdict is Verdict.OK) - before
        capacity = done / elapsed
        rate = max(1.0, min(profile.max_rate, capacity * profile.load_share))
        log.info("capacity %.1f steps/s; the schedule runs at %.1f steps/s", capacity, rate)
        return capacity, rate

    async def _faults(self, stage: Stage, canary_token: str) -> None:
        schedule = self.schedule
        log.info("baseline: %.0f s", schedule.baseline)
        await asyncio.sleep(schedule.baseline)
        for name in self.fault_names:
            log.info("fault %s: %.1f s", name, schedule.fault)
            window = await inflict(name, stage, schedule.fault)
            self.faults.append(window)
            window.recovered_after = await _recovery(stage.bastion.base_url, canary_token)
            log.info("fault %s over; recovered after %s s", name, window.recovered_after)
            rest = schedule.recovery - (time.monotonic() - window.ended)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _wait_for_mail(self, sink: Sink) -> float:
        """Seconds until every promised email arrived (or the wait ran out)."""
        started = time.monotonic()
        deadline = started + self.profile.mail_wait_seconds
        while time.monotonic() < deadline:
            if not any(
                len(sink.mailbox.of(user.email, kind)) < promised
                for user in self.ledger.users
                for kind, promised in user.promised.items()
            ):
                break
            await asyncio.sleep(1.0)
        return time.monotonic() - started


async def _recovery(base_url: str, canary_token: str) -> float | None:
    """Seconds from now until service is back: /readyz 200, the limiter no longer degraded,
    and requests that read and write the database succeed, several rounds in a row."""
    started = time.monotonic()
    in_a_row = 0
    first_success: float | None = None
    while time.monotonic() - started < RECOVERY_WAIT_SECONDS:
        if await _probe(base_url, canary_token):
            in_a_row += 1
            first_success = first_success or time.monotonic()
            if in_a_row >= PROBES_IN_A_ROW:
                return round(first_success - started, 2)
        else:
            in_a_row, first_success = 0, None
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    return None


async def _probe(base_url: str, canary_token: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            ready = await client.get("/readyz")
            metrics = await client.get("/metrics")
            me = await client.get(
                "/api/v1/auth/me", headers={"Authorization": f"Bearer {canary_token}"}
            )
            write = await client.post("/api/v1/auth/forgot-password", json=CANARY_WRITE)
    except httpx.HTTPError:
        return False
    degraded = any(
        line.startswith("bastion_limiter_degraded ") and float(line.split()[1]) != 0
        for line in metrics.text.splitlines()
    )
    return (
        ready.status_code == 200
        and metrics.status_code == 200
        and not degraded
        and me.status_code == 200
        and write.status_code == 202
    )


async def _login(base_url: str, email: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def _outbox_backlog(engine: AsyncEngine) -> int:
    o = tables.outbox.c
    async with engine.connect() as connection:
        query = select(func.count()).where(o.sent_at.is_(None), o.failed_at.is_(None))
        return int((await connection.execute(query)).scalar_one())


def _create_user(email: str, role: str, env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(
        [str(MAIN_VENV / "bin" / "bastion"), "create-user", "--email", email, "--role", role]
        + ["--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env=clean_environment(env),
        cwd=cwd,
        capture_output=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"create-user {email} failed: {result.stderr.decode()}")


def run(
    profile: Profile,
    minutes: float,
    faults: tuple[str, ...],
    fault_seconds: float | None,
    output: Path,
    database: str,
) -> dict[str, Any]:
    drill = Drill(profile, minutes, faults, fault_seconds, database, output.parent / "logs")
    with contextlib.ExitStack() as cleanup:
        stage = drill.build(cleanup)
        return asyncio.run(drill.run(stage))


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Raising unwinds through the ExitStack: servers stop and the database is dropped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drill.run", description=__doc__)
    parser.add_argument("--minutes", type=float, help="length of the schedule (default 10)")
    parser.add_argument(
        "--short", action="store_true", help="the 1-minute version run by the test suite"
    )
    parser.add_argument(
        "--faults",
        help=f"comma-separated faults to inflict, in order (default: {','.join(FAULTS)})",
    )
    parser.add_argument(
        "--fault-seconds", type=float, help="how long each fault lasts (default: from the slot)"
    )
    parser.add_argument("--output", type=Path, default=default_output(), help="the JSON file")
    parser.add_argument("--database", default="bastion_drill", help="PostgreSQL database to use")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # httpx logs every request, aiosmtpd every SMTP command, at INFO.
    for noisy in ("httpx", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    profile = PROFILES["short" if args.short else "full"]
    minutes = args.minutes if args.minutes is not None else profile.minutes
    faults = tuple(args.faults.split(",")) if args.faults else FAULTS
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    results = run(profile, minutes, faults, args.fault_seconds, args.output, args.database)
    report.write(results, args.output)
    table = report.render_markdown(results)
    sys.stdout.write(table)
    if profile.append_results:
        bench_report.append_results_md(RESULTS_MD, table, title="Drill", make="drill")
    return 0 if results["met"]["all"] else 1


if __name__ == "__main__":
    sys.exit(main())
