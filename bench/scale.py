"""`--users N`: the requests whose cost could grow with the tables, at 1,000 users and at N.

One server, one database: 1,000 users are seeded and every request measured, then the table
grows to N (`bastion seed-users`, COPY) and the same requests are measured again, so that the
two columns differ by the data alone. Then Bastion's own statements are explained on the large
tables (bench/explain.py). Last, N aged audit events and N ended sessions are added
(bench/seed_retention.py) and logins are measured without, then beside, `bastion purge`
deleting them.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable
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


def scale_phases(bench: Bench, database: str, users: int) -> dict[str, Any]:
    server, env = start_bastion(bench, database, "bastion-scale.log")
    cli_env = servers.clean_environment(env)
    [admin] = bench.emails("admin", 1)
    seeding.seed_bastion_users([admin], cli_env, bench.scratch, role="admin")
    email_format = f"scale-{bench.run_id}-{{n}}@{EMAIL_DOMAIN}"
    step = SMALL // MEASURED_USERS
    measured = [email_format.replace("{n}", str(n)) for n in range(0, SMALL, step)]

    def measure(size: str) -> dict[str, Any]:
        tokens = [
            login.access_token
            for login in seeding.bastion_logins(server.base_url, measured, MEASURED_USERS)
        ]
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            admin_token = seeding.bastion_login(client, admin).access_token
        profile = bench.profile
        low_login = profile.login_concurrency[0]
        token_level = profile.token_concurrency[0]
        search = urlencode({"limit": 50, "email": search_fragment(measured[-1])})

        def admin_get(query: str) -> Callable[[str], Scenario]:
            return authenticated_get(f"{ADMIN_USERS}?{query}", [admin_token])

        phases: dict[str, PhaseResult] = {
            "login": bench.measure(
                f"login ({size})",
                server,
                lambda _: loadgen.scenario_credentials(
                    "/api/v1/auth/login", password=seeding.PASSWORD, emails=measured
                ),
                low_login,
            ),
            "me": bench.measure(
                f"me ({size})", server, authenticated_get("/api/v1/auth/me", tokens), token_level
            ),
            "refresh": measure_refresh(bench, server, measured),
            "admin_users_first_page": bench.measure(
                f"admin users first page ({size})", server, admin_get("limit=50"), token_level
            ),
            "admin_users_email_search": bench.measure(
                f"admin users email search ({size})", server, admin_get(search), token_level
            ),
            "admin_users_deep_cursor": bench.measure(
                f"admin users deep cursor ({size})",
                server,
                admin_get(urlencode({"limit": 50, "cursor": str(DEEP_CURSOR)})),
                token_level,
            ),
            "security_events": bench.measure(
                f"security events ({size})",
                server,
                authenticated_get("/api/v1/auth/me/security-events", tokens),
                token_level,
            ),
        }
        return {key: phase.as_dict() for key, phase in phases.items()}

    seeding.seed_in_bulk(email_format, SMALL, 0, cli_env, bench.scratch)
    grow(database)
    small = measure(label(SMALL))
    log.info("seeding %d more users", users - SMALL)
    seeding.seed_in_bulk(email_format, users - SMALL, SMALL, cli_env, bench.scratch)
    grow(database)
    large = measure(label(users))
    probe = asyncio.run(
        _probe(services.database_url(database), measured[0], search_fragment(measured[-1]))
    )
    plans = asyncio.run(explain.explain_all(services.database_url(database), probe))
    purge = purge_beside_logins(bench, server, database, cli_env, measured, users)
    server.stop()
    return {
        "users": {"small": SMALL, "large": users},
        "labels": {"small": label(SMALL), "large": label(users)},
        "small": small,
        "large": large,
        "explain": [plan.as_dict() for plan in plans],
        "purge": purge,
    }


def purge_beside_logins(
    bench: Bench,
    server: servers.Server,
    database: str,
    cli_env: dict[str, str],
    measured: list[str],
    rows: int,
) -> dict[str, Any]:
    """Logins without, then beside, a purge of `rows` aged audit events and `rows` ended
    sessions. Both phases are timed the same way, once each and back to back: the purge's own
    database work is what they differ by, so it must not be waited out as other processes' CPU
    is before the other phases."""
    asyncio.run(seed_retention.seed(services.database_url(database, "postgresql"), rows))

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
            server.base_url,
            [load],
            seconds=bench.profile.phase_seconds,
            server_group=server.process.pid,
            workers=server.workers(),
        )
        return result

    without = logins("login without purge")
    started = time.monotonic()
    purge = subprocess.Popen(
        [str(MAIN_VENV / "bin" / "bastion"), "purge"],
        env=cli_env,
        cwd=bench.scratch,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    during = logins("login during purge")
    outlasted = purge.poll() is None
    said, errors = purge.communicate(timeout=3600)
    if purge.returncode != 0:
        raise RuntimeError(f"bastion purge failed: {errors[-2000:]}")
    seconds = time.monotonic() - started
    log.info("purge of %d rows of each kind took %.1f s: %s", rows, seconds, said.strip())
    return {
        "rows_of_each_kind": rows,
        "seconds": round(seconds, 1),
        "said": said.strip(),
        "outlasted_the_phase": outlasted,
        "login_without": without.as_dict(),
        "login_during": during.as_dict(),
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
    """Sessions for the seeded users, then the statistics autovacuum would have gathered."""
    started = time.monotonic()
    services.execute(database, *SESSIONS_FOR_EVERYONE)
    services.vacuum_analyze(database)
    log.info("sessions made and tables analyzed in %.1f s", time.monotonic() - started)


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
