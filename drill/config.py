"""Every knob of the drill: where it runs, its two profiles, and what it promises to check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import REPO

DRILL_DIR = REPO / "drill"
RESULTS_DIR = DRILL_DIR / "results"
RESULTS_MD = DRILL_DIR / "RESULTS.md"
WORKERS = 2
PASSWORD = "Quartz-Harbor-Lantern-42"

# The promises, checked after every fault and at the end.
RECOVERY_LIMIT_SECONDS = 5.0
RSS_GROWTH_LIMIT = 0.10
# How often the monitor reads /metrics, /readyz, the workers and PostgreSQL (as Prometheus
# would scrape).
MONITOR_INTERVAL_SECONDS = 1.0
# A connection error is a clean failure while a worker is down, and this long after it is back
# (a client may be told of a closed keep-alive connection only at its next request).
CONNECTION_GRACE_SECONDS = 2.0
# The order of the faults. The rolling restart comes early so that the workers measured for
# leaks at the end have lived through every other fault; SMTP first, so that the mail it held
# back has time to go out before the end.
FAULTS = (
    "smtp_down_then_slow",
    "rolling_restart",
    "worker_killed",
    "postgres_restarted",
    "postgres_partitioned",
    "redis_stopped",
)


@dataclass(frozen=True)
class Profile:
    name: str
    minutes: float
    # Before the timed schedule: people sign up at this rate to make a population, then the
    # mixed workload runs closed-loop at `capacity_concurrency` to measure capacity.
    population_seconds: float
    population_rate: float
    capacity_seconds: float
    capacity_concurrency: int
    load_share: float  # of the measured capacity
    max_rate: float  # steps/s at most, whatever the capacity
    fault_seconds: tuple[float, float]  # each fault's length is the slot's share, within this
    # RSS is first read this long after a worker appears. A worker's RSS climbs for its first
    # 40 to 60 s under the drill's load (pools, caches, the allocator's arenas), then holds.
    warmup_seconds: float
    # After the schedule: how long every promised email may take to arrive.
    mail_wait_seconds: float
    argon2: tuple[int, int, int]  # time cost, memory cost (KiB), parallelism
    append_results: bool


FULL = Profile(
    name="full",
    minutes=10.0,
    population_seconds=20.0,
    population_rate=20.0,
    capacity_seconds=20.0,
    capacity_concurrency=16,
    load_share=0.5,
    max_rate=400.0,
    fault_seconds=(10.0, 30.0),
    warmup_seconds=60.0,
    mail_wait_seconds=300.0,
    # Bastion's defaults, as the benchmark uses: the drill measures the service as deployed.
    argon2=(2, 19456, 1),
    append_results=True,
)

# `make test`'s version: each fault once, briefly; facts only, never timing. Cheap hashing keeps
# the client and the server light on a machine shared with the rest of the suite.
SHORT = Profile(
    name="short",
    minutes=0.5,
    population_seconds=4.0,
    population_rate=15.0,
    capacity_seconds=3.0,
    capacity_concurrency=8,
    load_share=0.5,
    max_rate=40.0,
    fault_seconds=(2.0, 3.0),
    # Even at this light load, a new worker climbs for about 8 s (90 → 125 MB) before it holds.
    warmup_seconds=10.0,
    # Longer than the outbox's two-minute lease: mail a SIGKILLed worker had claimed waits for it.
    mail_wait_seconds=150.0,
    argon2=(1, 1024, 1),
    append_results=False,
)

PROFILES = {profile.name: profile for profile in (FULL, SHORT)}


def default_output() -> Path:
    return RESULTS_DIR / "latest.json"
