"""Every knob of the benchmark: where things run, for how long, and which limits it lifts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
MAIN_VENV = REPO / ".venv"
PEER_VENV = BENCH_DIR / ".venv-peer"

HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/9"

WORKERS = 2
BASTION_READY_PATH = "/healthz"

# Bastion's defaults; the hash ceiling and the peer must use the same cost or the ratios lie.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST = 19456
ARGON2_PARALLELISM = 1

# Passes Bastion's policy (length, classes, not common, no email local part) and FastAPI-Users'.
PASSWORD = "Quartz-Harbor-Lantern-42"
WRONG_PASSWORD = "Quartz-Harbor-Lantern-43"
EMAIL_DOMAIN = "bench.example.org"

# Without these the benchmark would measure 429 responses. Keys are Settings field names
# (src/bastion/settings.py), set as BASTION_<FIELD>; the ceiling there is 100_000_000.
LIFTED_LIMITS: dict[str, int] = {
    "login_max_failures": 100_000_000,
    "account_max_failures": 100_000_000,
    "rate_limit_per_minute": 100_000_000,
    "user_rate_limit_per_minute": 100_000_000,
    "register_per_hour": 100_000_000,
    "forgot_password_per_hour": 100_000_000,
    "verification_resend_per_hour": 100_000_000,
}


@dataclass(frozen=True)
class Profile:
    """How long and how hard each phase runs; `smoke` keeps the harness testable in seconds."""

    name: str
    phase_seconds: int
    warmup_seconds: int
    hash_seconds: float
    seed_users: int
    login_concurrency: tuple[int, int]
    token_concurrency: tuple[int, int]
    refresh_concurrency: int
    register_concurrency: int
    enumeration_concurrency: int
    # Connections sending authenticated GETs, each pausing between requests, beside logins at
    # the high login concurrency: what a login storm does to everyone else on the workers.
    storm_get_concurrency: int
    storm_get_pause_ms: int
    # wrk's threads share the two cores with the server, so use as few as keep it ahead.
    wrk_threads: int
    # Seconds of phases that may be measured again because other processes took CPU.
    retry_budget_seconds: int
    # Each comparison (Bastion against a ceiling or the peer) is measured this many times,
    # alternating sides; its ratio is the median of the pairs.
    pairs: int
    # The second factor's logins (bench/pyload.py): users with a TOTP factor (each logs in at most
    # once per 30 s step, so at least the login rate times 30 s of them), users with a passkey,
    # and the Python load generator's processes.
    totp_users: int
    passkey_users: int
    flow_processes: int
    # Logouts timed until the example service refuses their token.
    revocations: int = 100


FULL = Profile(
    name="full",
    phase_seconds=10,
    warmup_seconds=2,
    hash_seconds=8.0,
    seed_users=16,
    login_concurrency=(4, 32),
    token_concurrency=(16, 64),
    refresh_concurrency=16,
    register_concurrency=16,
    # One connection per kind: no queueing, so the medians compare the two paths' own time.
    enumeration_concurrency=1,
    storm_get_concurrency=4,
    storm_get_pause_ms=20,
    wrk_threads=1,
    retry_budget_seconds=240,
    pairs=3,
    # ~80 password logins/s on 2 cores: 2,400 logins in a step, when two TOTP phases share one.
    totp_users=2400,
    passkey_users=16,
    flow_processes=2,
)

SMOKE = Profile(
    name="smoke",
    phase_seconds=1,
    warmup_seconds=0,
    hash_seconds=0.5,
    seed_users=4,
    login_concurrency=(2, 4),
    token_concurrency=(2, 4),
    refresh_concurrency=2,
    register_concurrency=2,
    enumeration_concurrency=1,
    storm_get_concurrency=1,
    storm_get_pause_ms=20,
    wrk_threads=1,
    retry_budget_seconds=0,
    pairs=2,
    revocations=5,
    totp_users=120,
    passkey_users=4,
    flow_processes=1,
)

PROFILES = {profile.name: profile for profile in (FULL, SMOKE)}

# --users: the requests measured at 1,000 users and at N, as (key, label), in the table's order.
SCALE_ROWS = (
    ("login", "login"),
    ("me", "GET /me"),
    ("refresh", "refresh"),
    ("admin_users_first_page", "admin users, first page"),
    ("admin_users_one_role", "admin users, one role"),
    ("admin_users_deep_cursor", "admin users, deep cursor"),
    ("admin_users_email_search", "admin users, email search"),
    ("security_events", "security events"),
)
# Reported beside the others but not held to their 1.2×: a substring search reads the trigram
# postings of what it looks for, and those grow with the table (docs/operations.md). Its own
# goal is that it never walks the users.
SCALE_ROWS_REPORTED_ONLY = frozenset({"admin_users_email_search"})
