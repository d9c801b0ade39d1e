"""`--users N`: the requests whose cost could grow with the tables, at 1,000 users and at N.

Two servers with the same settings, each on a database of its own: one holds 1,000 users, the
other N (`bastion seed-users`, COPY), the first thousand of which are the same people. Each
request is measured on both in alternation, in `pairs` pairs whose order flips every pair (small
then large, large then small, ...), so that a noisy moment on a shared machine lands on both
sides; each row's ratio is the median of its pairs. Then Bastion's own statements are explained
on the large tables (bench/explain.py). Last, N aged audit events and N ended sessions are added
there (bench/seed_retention.py) and logins are measured without, then beside, `bastion purge`
deleting them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.adapters.sql import tables
from bastion.core.secrets import hash_token
from bench import explain, loadgen, seed_retention, seeding, servers, services
from bench.config import EMAIL_DOMAIN, MAIN_VENV
from bench.harness import Bench, authenticated_get, log, measure_refresh, start_bastion
from bench.loadgen import PhaseResult, Scenario

SMALL = 1000
# The users whose requests are measured: spread over the first thousand, so they exist at both
# sizes.
MEASURED_USERS = 16
# A cursor three quarters of the way through the id order: a page deep in the table.
DEEP_CURSOR = uuid.UUID("c0000000-0000-4000-8000-000000000000")
ADMIN_USERS = "/api/v1/admin/users"
# How long `bastion purge` is given to start before the phases beside it.
PURGE_START_SECONDS = 5.0


@dataclass(frozen=True)
class Side:
    """One size of the comparison: its server, its database and the admin who lists its users."""

    size: str  # "small" or "large"
    label: str  # "1k", "1M"
    database: str
    server: servers.Server
    cli_env: dict[str, str]
    admin: str


def scale_phases(bench: Bench, database: str, users: int) -> dict[str, Any]:
    email_format = f"scale-{bench.run_id}-{{n}}@{EMAIL_DOMAIN}"
    step = SMALL // MEASURED_USERS
    measured = [email_format.replace("{n}", str(n)) for n in range(0, SMALL, step)]
    # The large side first: its seeding writes the most, and the small side's settling
    # checkpoint then finds little left to write.
    large = _side(bench, "large", database, users, email_format)
    small = _side(bench, "small", f"{database}_small", SMALL, email_format)
    pairs = []
    for number in range(1, bench.profile.pairs + 1):
        log.info("pair %d of %d", number, bench.profile.pairs)
        order = (small, large) if number % 2 else (large, small)
        pair: dict[str, dict[str, Any]] = {small.size: {}, large.size: {}}
        rows = {side.size: _rows(bench, side, measured) for side in order}
        for key in rows[small.size]:
            for side in order:
                pair[side.size][key] = rows[side.size][key]().as_dict()
        pairs.append(pair)
    probe = asyncio.run(
        _probe(services.database_url(large.database), measured[0], search_fragment(measured[-1]))
    )
    plans = asyncio.run(explain.explain_all(services.database_url(large.database), probe))
    purge = purge_beside_logins(bench, large, measured, users)
    return {
        "users": {"small": SMALL, "large": users},
        "labels": {"small": small.label, "large": large.label},
        "pairs": pairs,
        "explain": [plan.as_dict() for plan in plans],
        "purge": purge,
    }


def _side(bench: Bench, size: str, database: str, users: int, email_format: str) -> Side:
    """A server on a database of `users` seeded users (and an admin), settled."""
    server, env = start_bastion(bench, database, f"bastion-scale-{size}.log")
    cli_env = servers.clean_environment(env)
    [admin] = bench.emails(f"admin-{size}", 1)
    seeding.seed_bastion_users([admin], cli_env, bench.scratch, role="admin")
    log.info("seeding %d users (%s)", users, size)
    seeding.seed_in_bulk(email_format, users, 0, cli_env, bench.scratch)
    grow(database)
    return Side(size, label(users), database, server, cli_env, admin)


def _rows(bench: Bench, side: Side, measured: list[str]) -> dict[str, Callable[[], PhaseResult]]:
    """Each row's measurement on one side, signed in afresh (tokens outlive a pair, not a run)."""
    server, size = side.server, side.label
    tokens = [
        login.access_token
        for login in seeding.bastion_logins(server.base_url, measured, MEASURED_USERS)
    ]
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        admin_token = seeding.bastion_login(client, side.admin).access_token
    profile = bench.profile
    token_level = profile.token_concurrency[0]
    search = urlencode({"limit": 50, "email": search_fragment(measured[-1])})

    def admin_get(query: str) -> Callable[[str], Scenario]:
        return authenticated_get(f"{ADMIN_USERS}?{query}", [admin_token])

    def get(name: str, make: Callable[[str], Scenario]) -> Callable[[], PhaseResult]:
        return lambda: bench.measure(f"{name} ({size})", server, make, token_level)

    return {
        "login": lambda: bench.measure(
            f"login ({size})",
            server,
            lambda _: loadgen.scenario_credentials(
                "/api/v1/auth/login", password=seeding.PASSWORD, emails=measured
            ),
            profile.login_concurrency[0],
        ),
        "me": get("me", authenticated_get("/api/v1/auth/me", tokens)),
        "refresh": lambda: measure_refresh(bench, server, measured, name=f"refresh ({size})"),
        "admin_users_first_page": get("admin users first page", admin_get("limit=50")),
        "admin_users_one_role": get(
            "admin users one role", admin_get(urlencode({"limit": 50, "role": "admin"}))
        ),
        "admin_users_deep_cursor": get(
            "admin users deep cursor",
            admin_get(urlencode({"limit": 50, "cursor": str(DEEP_CURSOR)})),
        ),
        "admin_users_email_search": get("admin users email search", admin_get(search)),
        "security_events": get(
            "security events", authenticated_get("/api/v1/auth/me/security-events", tokens)
        ),
    }


def purge_beside_logins(bench: Bench, side: Side, measured: list[str], rows: int) -> dict[str, Any]:
    """Logins without, then beside, a purge of `rows` aged audit events and `rows` ended
    sessions, in pairs like the rows above: `bastion purge` is stopped (SIGSTOP, between its
    statements or while PostgreSQL finishes the one it sent) for each phase without, and let go
    for each phase beside it. The phases are timed back to back, not waited out as other
    processes' CPU is before the other phases: the purge's own work is what they differ by."""
    asyncio.run(seed_retention.seed(services.database_url(side.database, "postgresql"), rows))
    settle(side.database)

    def logins(name: str) -> PhaseResult:
        load = loadgen.Load(
            name,
            loadgen.scenario_credentials(
                "/api/v1/auth/login", password=seeding.PASSWORD, emails=measured
            ),
            bench.profile.login_concurrency[0],
            bench.profile.wrk_threads,
        )
        [result] = loadgen.run_together(
            side.server.base_url,
            [load],
            seconds=bench.profile.phase_seconds,
            server_group=side.server.process.pid,
            workers=side.server.workers(),
        )
        return result

    started = time.monotonic()
    purge = subprocess.Popen(
        [str(MAIN_VENV / "bin" / "bastion"), "purge"],
        env=side.cli_env,
        cwd=bench.scratch,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if bench.profile.warmup_seconds:
        # The command's start (imports, settings, a connection) is not the purge's work.
        time.sleep(PURGE_START_SECONDS)
    pairs, stopped = [], 0.0
    for number in range(1, bench.profile.pairs + 1):
        purge.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        without = logins(f"login without purge ({number})")
        stopped += time.monotonic() - stopped_at
        purge.send_signal(signal.SIGCONT)
        during = logins(f"login during purge ({number})")
        pairs.append(
            {
                "login_without": without.as_dict(),
                "login_during": during.as_dict(),
                "outlasted_the_phase": purge.poll() is None,
            }
        )
    said, errors = purge.communicate(timeout=3600)
    if purge.returncode != 0:
        raise RuntimeError(f"bastion purge failed: {errors[-2000:]}")
    seconds = time.monotonic() - started - stopped
    log.info("purge of %d rows of each kind took %.1f s: %s", rows, seconds, said.strip())
    return {
        "rows_of_each_kind": rows,
        "seconds": round(seconds, 1),
        "said": said.strip(),
        "pairs": pairs,
    }


# Every user without a session gets one, remembered, with its refresh token: the sessions table
# grows with the users, as it does in production.
SESSIONS_FOR_EVERYONE = (
    "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, remember_me, "
    "auth_time) "
    "SELECT gen_random_uuid(), u.id, now(), now() + interval '30 days', now(), true, now() "
    "FROM users u "
    "WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)",
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) "
    "SELECT encode(sha256(convert_to(s.id::text, 'UTF8')), 'hex'), s.id, now() FROM sessions s "
    "WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id)",
)


def grow(database: str) -> None:
    """Sessions for the seeded users, then the database settled."""
    started = time.monotonic()
    services.execute(database, *SESSIONS_FOR_EVERYONE)
    settle(database)
    log.info("sessions made and tables settled in %.1f s", time.monotonic() - started)


def settle(database: str) -> None:
    """What autovacuum would have gathered by the time a real table reached this size, and a
    checkpoint: a bulk load's gigabyte of WAL would otherwise be written out during the phases
    that follow it, slowing one side of the comparison only."""
    services.execute(database, "VACUUM ANALYZE", "CHECKPOINT")


def search_fragment(email: str) -> str:
    """What an admin types to find one user: the distinctive end of the address, its number
    and the @. (Every seeded address also holds the run's id: a fragment of that part would
    match the trigrams of all the rows — 150 ms at a million — which real addresses do not
    share.)"""
    return "-" + email.split("@")[0].rsplit("-", 1)[1] + "@"


def label(users: int) -> str:
    if users >= 1_000_000 and users % 1_000_000 == 0:
        return f"{users // 1_000_000}M"
    if users >= 1000 and users % 1000 == 0:
        return f"{users // 1000}k"
    return str(users)


async def _probe(database_url: str, email: str, fragment: str) -> explain.Probe:
    """Real rows to explain the statements with: a measured user, one of their sessions and
    an unspent refresh token."""
    engine = create_async_engine(database_url, pool_size=1)
    u, s, r = tables.users.c, tables.sessions.c, tables.refresh_tokens.c
    try:
        async with engine.connect() as connection:
            user_id = (await connection.execute(select(u.id).where(u.email == email))).scalar_one()
            session_id = (
                await connection.execute(select(s.id).where(s.user_id == user_id).limit(1))
            ).scalar_one()
            token_hash = (
                await connection.execute(
                    select(r.token_hash).where(r.rotated_at.is_(None)).limit(1)
                )
            ).scalar_one_or_none()
    finally:
        await engine.dispose()
    return explain.Probe(
        email=email,
        user_id=user_id,
        session_id=session_id,
        refresh_token_hash=token_hash or hash_token("none"),
        email_fragment=fragment,
        deep_cursor=DEEP_CURSOR,
    )
