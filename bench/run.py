"""`python -m bench.run`: one complete, bounded benchmark run.

Every server (the HTTP ceiling's bare app, Bastion, FastAPI-Users) starts first and stays up:
idle, it costs nothing. The comparisons are then measured in pairs, each ceiling or peer phase
beside Bastion's, pair after pair; then Bastion's other phases (login and token validation at low
concurrency, refresh, enumeration timing of login, forgot-password and resend, the login storm)
and the peer's login storm. With `--users N`, the scale profile instead (bench/scale.py).
Everything started is stopped, and the databases and Redis keys created are removed, however the
run ends.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import granian
import httpx

from bench import ceilings, loadgen, procs, pyload, report, scale, seeding, servers, services
from bench.config import (
    ARGON2_MEMORY_COST,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    EMAIL_DOMAIN,
    HOST,
    LIFTED_LIMITS,
    MAIN_VENV,
    PASSWORD,
    PEER_VENV,
    PROFILES,
    REPO,
    RESULTS_DIR,
    RESULTS_MD,
    WORKERS,
    WRONG_PASSWORD,
    Profile,
)
from bench.harness import (
    Bench,
    authenticated_get,
    log,
    measure_refresh,
    start_bastion,
)
from bench.loadgen import PhaseResult, Scenario

SESSIONS_FOR_TOKENS = 8
# A revocation not seen by then is recorded as taking that long (a failed target).
REVOCATION_GIVE_UP_SECONDS = 5.0


def measure_hash_ceiling(seconds: float, attempt: int) -> tuple[ceilings.HashCeiling, float]:
    own_groups = {os.getpgrp()}
    before = procs.foreign_cpu_seconds(own_groups)
    started = time.monotonic()
    result = ceilings.hash_ceiling(seconds)
    other = procs.growth(before, procs.foreign_cpu_seconds(own_groups)) / (
        time.monotonic() - started
    )
    return replace(result, other_cpu_cores=round(other, 3), attempts=attempt), other


def start_ping(bench: Bench) -> servers.Server:
    """The HTTP ceiling's server: a bare FastAPI app on the same granian set-up."""
    port = procs.free_port()
    return bench.start(
        servers.start_granian("ping", "bench.ping_app:app", port, bench.logs / "ping.log"), "/ping"
    )


def login_storm(
    bench: Bench,
    server: servers.Server,
    logins: Callable[[str], Scenario],
    get_path: str,
    tokens: list[str],
) -> tuple[PhaseResult, PhaseResult]:
    """Logins at the high concurrency with light authenticated GETs beside them. Not a target:
    it shows what hashing costs everyone else on the workers (a server that hashes on its event
    loop makes every other request wait for the hash in progress)."""
    profile = bench.profile
    storm, beside = bench.measure_together(
        server,
        [
            ("login (storm)", logins, profile.login_concurrency[1], 1),
            (
                f"GET {get_path} beside it",
                lambda _: loadgen.scenario_get(
                    get_path, tokens, pause_ms=profile.storm_get_pause_ms
                ),
                profile.storm_get_concurrency,
                1,
            ),
        ],
    )
    return storm, beside


@dataclass(frozen=True)
class SecondFactors:
    """Bastion's users with a TOTP factor and with a passkey, enrolled through the API before any
    phase is timed, for the logins measured with the Python load generator."""

    totp: pyload.TotpPool
    passkeys: list[dict[str, Any]]


@dataclass(frozen=True)
class UnderTest:
    """A started server and what its phases need: who logs in, with which tokens, and how a
    login and a sign-up look on this server."""

    server: servers.Server
    users: list[str]
    tokens: list[str]
    logins: Callable[[str], Scenario]
    registrations: Callable[[str], Scenario]
    me_path: str
    env: dict[str, str] = field(default_factory=dict)
    factors: SecondFactors | None = None


def start_bastion_under_test(bench: Bench, database: str) -> UnderTest:
    server, env = start_bastion(bench, database, "bastion.log")
    users = bench.emails("user", bench.profile.seed_users)
    started = time.monotonic()
    seeding.seed_bastion_users(users, servers.clean_environment(env), bench.scratch)
    log.info("seeded %d users in %.1f s", len(users), time.monotonic() - started)
    tokens = [
        session.access_token
        for session in seeding.bastion_logins(server.base_url, users, SESSIONS_FOR_TOKENS)
    ]
    factors = enrol_second_factors(bench, server, servers.clean_environment(env))
    return UnderTest(
        server=server,
        users=users,
        tokens=tokens,
        logins=credentials(users),
        registrations=lambda tag: loadgen.scenario_credentials(
            "/api/v1/auth/register",
            password=PASSWORD,
            email_prefix=bench.unique_prefix(tag),
            email_domain=EMAIL_DOMAIN,
            expected_status=202,
        ),
        me_path="/api/v1/auth/me",
        env=dict(env),
        factors=factors,
    )


TASK_SERVICE = REPO / "examples" / "task-service"


def start_task_service(bench: Bench, bastion: UnderTest) -> servers.Server:
    """examples/task-service beside Bastion, as its README runs it: the verifier offline, with
    revocation by Bastion's event stream (a service key made by the CLI)."""
    created = subprocess.run(
        [str(MAIN_VENV / "bin" / "bastion"), "service-keys", "create", "bench"]
        + ["--scope", "events:read"],
        env=servers.clean_environment(bastion.env),
        cwd=bench.scratch,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    port = procs.free_port()
    env = {
        "BASTION_ISSUER": bastion.server.base_url,
        "BASTION_SERVICE_KEY": created.stdout.strip().splitlines()[-1],
        # No webhook is measured: any secret of the right form will do.
        "TASKS_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    argv = [str(MAIN_VENV / "bin" / "granian"), "--interface", "asgi", "--loop", "uvloop"]
    argv += ["--workers", str(WORKERS), "--host", HOST, "--port", str(port), "main:app"]
    log_path = bench.logs / "task-service.log"
    process = procs.spawn(argv, env=servers.clean_environment(env), cwd=TASK_SERVICE, log=log_path)
    server = servers.Server("task-service", process, f"http://{HOST}:{port}", log_path)
    return bench.start(server, "/public/tasks")


def measure_revocation(bench: Bench, bastion: UnderTest, tasks: servers.Server) -> dict[str, Any]:
    """Log in, see the example service accept the token, log out, and time until it refuses
    it: the propagation of a revocation through the event stream."""
    samples: list[float] = []
    with httpx.Client(timeout=10) as client:
        for number in range(bench.profile.revocations):
            email = bastion.users[number % len(bastion.users)]
            login = client.post(
                f"{bastion.server.base_url}/api/v1/auth/login",
                json={"email": email, "password": PASSWORD},
            )
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            if client.get(f"{tasks.base_url}/tasks", headers=headers).status_code != 200:
                raise RuntimeError("the example service refused a fresh token")
            logout = client.post(f"{bastion.server.base_url}/api/v1/auth/logout", headers=headers)
            logout.raise_for_status()
            started = time.perf_counter()
            while client.get(f"{tasks.base_url}/tasks", headers=headers).status_code == 200:
                if time.perf_counter() - started > REVOCATION_GIVE_UP_SECONDS:
                    break
                time.sleep(0.002)
            samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {
        "logouts": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 1),
        "max_ms": round(ordered[-1], 1),
    }


def task_service_phases(
    bench: Bench, bastion: UnderTest
) -> tuple[dict[str, PhaseResult], dict[str, Any]]:
    """A protected GET on the example service and the same GET unprotected, at the same
    concurrency; then the revocation propagation."""
    tasks = start_task_service(bench, bastion)
    high = bench.profile.token_concurrency[1]
    phases = {
        "task_service_protected": bench.measure(
            "example GET /tasks (verifier)",
            tasks,
            authenticated_get("/tasks", bastion.tokens),
            high,
        ),
        "task_service_unprotected": bench.measure(
            "example GET /public/tasks",
            tasks,
            authenticated_get("/public/tasks", bastion.tokens),
            high,
        ),
    }
    return phases, measure_revocation(bench, bastion, tasks)


def enrol_second_factors(
    bench: Bench, server: servers.Server, env: dict[str, str]
) -> SecondFactors:
    """Users made in bulk, then given a factor through the API as a person would."""
    profile = bench.profile
    started = time.monotonic()
    # One `bastion seed-users` (an interpreter start) for both kinds: TOTP users first.
    email_format = f"mfa-{bench.run_id}-{{n}}@{EMAIL_DOMAIN}"
    count = profile.totp_users + profile.passkey_users
    seeding.seed_in_bulk(email_format, count, 0, env, bench.scratch)
    emails = [email_format.replace("{n}", str(n)) for n in range(count)]
    totp = seeding.enrol_totp(server.base_url, emails[: profile.totp_users])
    passkeys = seeding.enrol_passkeys(server.base_url, emails[profile.totp_users :])
    log.info(
        "enrolled %d TOTP factors and %d passkeys in %.1f s",
        len(totp),
        len(passkeys),
        time.monotonic() - started,
    )
    return SecondFactors(
        totp=pyload.TotpPool(
            secrets={user.email: user.secret for user in totp},
            last_step={user.email: user.spent_step for user in totp},
        ),
        passkeys=passkeys,
    )


def second_factor_logins(
    bench: Bench, bastion: UnderTest, tag: str
) -> dict[str, loadgen.PhaseResult]:
    """Password, password plus TOTP and passkey logins, one after the other, all from the same
    Python load generator at the high login concurrency, so their ratios compare like with like.
    The password logins are those of the wrk phases' users (no factor)."""
    assert bastion.factors is not None
    concurrency, processes = bench.profile.login_concurrency[1], bench.profile.flow_processes
    loads = {
        "login_password_py": pyload.FlowLoad(
            "login, Python client" + tag,
            "password",
            concurrency,
            processes,
            password=PASSWORD,
            emails=bastion.users,
        ),
        "login_totp": pyload.FlowLoad(
            "login + TOTP, Python client" + tag,
            "totp",
            concurrency,
            processes,
            password=PASSWORD,
            totp=bastion.factors.totp,
        ),
        "login_passkey": pyload.FlowLoad(
            "passkey login, Python client" + tag,
            "passkey",
            concurrency,
            processes,
            credentials=bastion.factors.passkeys,
            origin=bastion.server.base_url,
        ),
    }
    return {key: bench.measure_flow(bastion.server, load) for key, load in loads.items()}


def credentials(
    emails: list[str], password: str = PASSWORD, expected: int = 200
) -> Callable[[str], Scenario]:
    return lambda _: loadgen.scenario_credentials(
        "/api/v1/auth/login", password=password, emails=emails, expected_status=expected
    )


def known_addresses(path: str, emails: list[str]) -> Callable[[str], Scenario]:
    return lambda _: loadgen.scenario_address(path, emails=emails)


def new_addresses(bench: Bench, path: str) -> Callable[[str], Scenario]:
    """A never-seen address per request, unique to the phase's tag."""
    return lambda tag: loadgen.scenario_address(
        path, email_prefix=bench.unique_prefix(tag), email_domain=EMAIL_DOMAIN
    )


def bastion_phases(bench: Bench, bastion: UnderTest) -> dict[str, Any]:
    """The Bastion phases measured once (the compared ones are measured in pairs)."""
    profile = bench.profile
    server, users, tokens = bastion.server, bastion.users, bastion.tokens
    phases: dict[str, PhaseResult] = {
        "login_c_low": bench.measure("login", server, bastion.logins, profile.login_concurrency[0]),
    }
    low = profile.token_concurrency[0]
    for key, path in (("verify_token", "/api/v1/auth/verify-token"), ("me", "/api/v1/auth/me")):
        name = path.rsplit("/", 1)[1]
        phases[f"{key}_c_low"] = bench.measure(name, server, authenticated_get(path, tokens), low)
    phases["refresh"] = measure_refresh(bench, server, users)

    # Both kinds of failed login run at the same time, so any difference between their medians
    # is Bastion's and not a change in load between two phases.
    enumeration = profile.enumeration_concurrency
    unknown, wrong = bench.measure_together(
        server,
        [
            (
                "login unknown email",
                lambda tag: loadgen.scenario_credentials(
                    "/api/v1/auth/login",
                    password=PASSWORD,
                    email_prefix=bench.unique_prefix(tag),
                    email_domain=EMAIL_DOMAIN,
                    expected_status=401,
                ),
                enumeration,
                1,
            ),
            (
                "login wrong password",
                credentials(users, password=WRONG_PASSWORD, expected=401),
                enumeration,
                1,
            ),
        ],
    )
    phases["enumeration_unknown_email"] = unknown
    phases["enumeration_wrong_password"] = wrong

    # Forgot-password and resend the same way: an address with an account (that gets the
    # email) against one without, at the same time, one connection each.
    unverified = bench.emails("unverified", profile.seed_users)
    seeding.register_bastion_users(server.base_url, unverified)
    pairs = [
        ("forgot", "/api/v1/auth/forgot-password", users, "existing"),
        ("resend", "/api/v1/auth/verify-email/resend", unverified, "unverified"),
    ]
    for kind, path, accounts, account_label in pairs:
        has_account, unknown = bench.measure_together(
            server,
            [
                (f"{kind} {account_label}", known_addresses(path, accounts), enumeration, 1),
                (f"{kind} unknown email", new_addresses(bench, path), enumeration, 1),
            ],
        )
        phases[f"enumeration_{kind}_{account_label}"] = has_account
        phases[f"enumeration_{kind}_unknown_email"] = unknown
    phases["login_storm"], phases["me_beside_login_storm"] = login_storm(
        bench, server, bastion.logins, bastion.me_path, tokens
    )
    return {key: phase.as_dict() for key, phase in phases.items()}


def start_peer(bench: Bench, database: str) -> UnderTest:
    """FastAPI-Users on the same server, database server and hash cost, for the ≥ 1.0 ratios."""
    services.recreate_database(database)
    bench.cleanup.callback(services.drop_database, database)
    env = {
        "PEER_DATABASE_URL": services.database_url(database),
        "PEER_SECRET": secrets.token_urlsafe(48),
        "PEER_ARGON2_TIME_COST": str(ARGON2_TIME_COST),
        "PEER_ARGON2_MEMORY_COST": str(ARGON2_MEMORY_COST),
        "PEER_ARGON2_PARALLELISM": str(ARGON2_PARALLELISM),
    }
    tables = procs.spawn(
        [str(PEER_VENV / "bin" / "python"), "-m", "bench.peer.app"],
        env=servers.clean_environment(env),
        cwd=REPO,
        log=bench.logs / "peer.log",
    )
    if procs.wait_with_usage(tables, timeout=60).returncode != 0:
        raise RuntimeError(f"create_db_and_tables failed; see {bench.logs / 'peer.log'}")
    port = procs.free_port()
    server = bench.start(
        servers.start_granian(
            "fastapi-users",
            "bench.peer.app:app",
            port,
            bench.logs / "peer.log",
            peer=True,
            env=env,
        ),
        "/healthz",
    )
    users = bench.emails("peer", bench.profile.seed_users)
    seeding.seed_peer_users(server.base_url, users)
    return UnderTest(
        server=server,
        users=users,
        tokens=seeding.peer_tokens(server.base_url, users, SESSIONS_FOR_TOKENS),
        logins=lambda _: loadgen.scenario_credentials(
            "/auth/jwt/login", password=PASSWORD, emails=users, form=True
        ),
        registrations=lambda tag: loadgen.scenario_credentials(
            "/auth/register",
            password=PASSWORD,
            email_prefix=bench.unique_prefix(f"peer-{tag}"),
            email_domain=EMAIL_DOMAIN,
            expected_status=201,
        ),
        me_path="/users/me",
    )


def peer_phases(bench: Bench, peer: UnderTest) -> dict[str, Any]:
    """The peer's login storm, measured once, for the line under the table."""
    storm, beside = login_storm(bench, peer.server, peer.logins, peer.me_path, peer.tokens)
    return {"login_storm": storm.as_dict(), "me_beside_login_storm": beside.as_dict()}


def compared_pair(
    bench: Bench, number: int, bastion: UnderTest, peer: UnderTest | None, ping: servers.Server
) -> dict[str, Any]:
    """One pair of every comparison: each ceiling or peer phase next to Bastion's.

    Measured in alternation, pair after pair, a noisy moment on a shared machine lands on both
    sides of a ratio instead of on one.
    """
    profile = bench.profile
    high_login, high_token = profile.login_concurrency[1], profile.token_concurrency[1]
    tag = f" (pair {number})"
    log.info("pair %d of %d", number, profile.pairs)
    hash_ceiling = bench.quietest(
        lambda attempt: measure_hash_ceiling(profile.hash_seconds, attempt), os.getpgrp()
    )
    pair: dict[str, Any] = {"hash_ceiling": hash_ceiling.as_dict()}

    def measure(
        key: str, name: str, under: UnderTest, make: Callable[[str], Scenario], c: int
    ) -> None:
        pair[key] = bench.measure(name + tag, under.server, make, c).as_dict()

    measure("login_c_high", "login", bastion, bastion.logins, high_login)
    phases = second_factor_logins(bench, bastion, tag)
    pair.update({key: phase.as_dict() for key, phase in phases.items()})
    if peer is not None:
        measure("peer_login", "peer login", peer, peer.logins, high_login)
    measure("register", "register", bastion, bastion.registrations, profile.register_concurrency)
    if peer is not None:
        measure(
            "peer_register", "peer register", peer, peer.registrations, profile.register_concurrency
        )
    pair["http_ceiling"] = bench.measure(
        "ping (HTTP ceiling)" + tag, ping, lambda _: loadgen.scenario_get("/ping"), high_token
    ).as_dict()
    verify = authenticated_get("/api/v1/auth/verify-token", bastion.tokens)
    measure("verify_token_c_high", "verify-token", bastion, verify, high_token)
    measure(
        "me_c_high", "me", bastion, authenticated_get(bastion.me_path, bastion.tokens), high_token
    )
    # The sign-in page as a browser first asks for it: no cookie, so a form token is made too.
    measure(
        "login_page",
        "GET /login (page)",
        bastion,
        lambda _: loadgen.scenario_get("/login"),
        high_token,
    )
    if peer is not None:
        measure(
            "peer_me",
            "peer users/me",
            peer,
            authenticated_get(peer.me_path, peer.tokens),
            high_token,
        )
    return pair


def peer_versions() -> dict[str, str]:
    """What the peer ran, read from its own venv, since it is installed apart from Bastion."""
    code = (
        "import importlib.metadata as m, json; print(json.dumps({name: m.version(name) "
        "for name in ('fastapi-users', 'fastapi', 'granian', 'pwdlib', 'sqlalchemy')}))"
    )
    result = subprocess.run(
        [str(PEER_VENV / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def meta(profile: Profile) -> dict[str, Any]:
    return {
        "started_at": report.now(),
        "profile": profile.name,
        "machine": report.machine(),
        "commit": report.git_commit(),
        "workers": WORKERS,
        "phase_seconds": profile.phase_seconds,
        "warmup_seconds": profile.warmup_seconds,
        "pairs": profile.pairs,
        "load_generator": "wrk (bench/lua), closed loop, one connection per thread for refresh; "
        "the second factor's logins: bench/pyload.py (asyncio + httpx), closed loop, "
        f"{profile.flow_processes} processes",
        "granian": granian.__version__,
        "lifted_limits": LIFTED_LIMITS,
        "argon2": {
            "time_cost": ARGON2_TIME_COST,
            "memory_cost": ARGON2_MEMORY_COST,
            "parallelism": ARGON2_PARALLELISM,
        },
    }


def run(profile: Profile, output: Path, *, skip_peer: bool, database: str) -> dict[str, Any]:
    """Every server starts first and stays up (idle, it costs nothing): the compared phases
    then alternate between them, pair after pair."""
    with contextlib.ExitStack() as cleanup:
        # Server logs land beside the JSON, where a failed run can be looked into.
        bench = Bench(profile, output.parent / "logs", cleanup)
        results: dict[str, Any] = {"meta": meta(profile)}
        ping = start_ping(bench)
        bastion = start_bastion_under_test(bench, database)
        peer = None
        if not skip_peer:
            results["meta"]["peer_versions"] = peer_versions()
            peer = start_peer(bench, f"{database}_peer")
        results["pairs"] = [
            compared_pair(bench, number, bastion, peer, ping)
            for number in range(1, profile.pairs + 1)
        ]
        results["phases"] = bastion_phases(bench, bastion)
        task_phases, results["revocation"] = task_service_phases(bench, bastion)
        results["phases"].update({key: phase.as_dict() for key, phase in task_phases.items()})
        results["peer_phases"] = peer_phases(bench, peer) if peer is not None else None
        results["memory"] = {
            "bastion_peak_rss_mb": [
                round(procs.peak_rss_mb(pid), 1) for pid in bastion.server.workers()
            ],
            "peer_peak_rss_mb": (
                [round(procs.peak_rss_mb(pid), 1) for pid in peer.server.workers()]
                if peer is not None
                else []
            ),
        }
    return results


def run_scale(profile: Profile, output: Path, *, database: str, users: int) -> dict[str, Any]:
    """The --users profile (bench/scale.py)."""
    with contextlib.ExitStack() as cleanup:
        bench = Bench(profile, output.parent / "logs", cleanup)
        results: dict[str, Any] = {"meta": meta(profile)}
        results["scale"] = scale.scale_phases(bench, database, users)
    return results


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Raising unwinds through every ExitStack, so servers stop and databases are dropped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds-long phases; no RESULTS.md")
    parser.add_argument("--skip-peer", action="store_true", help="do not measure FastAPI-Users")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "latest.json", help="where the JSON goes"
    )
    parser.add_argument(
        "--database", default="bastion_bench", help="PostgreSQL database to create and drop"
    )
    parser.add_argument(
        "--users",
        type=int,
        help="instead of the comparison: login, /me, refresh, the admin user list and the "
        "security events at 1,000 users and at this many (e.g. 1000000)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # httpx logs every request at INFO; the setup logins would drown the phase lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    profile = PROFILES["smoke" if args.smoke else "full"]
    if args.users:
        if args.users <= scale.SMALL:
            parser.error(f"--users must be more than {scale.SMALL}")
        results = run_scale(profile, args.output, database=args.database, users=args.users)
        rows = report.scale_targets(results)
        report.write(results, rows, args.output)
        table = report.render_scale_markdown(results, rows)
    else:
        results = run(profile, args.output, skip_peer=args.skip_peer, database=args.database)
        rows = report.targets(results)
        report.write(results, rows, args.output)
        table = report.render_markdown(results, rows)
    sys.stdout.write(table)
    if not args.smoke:
        report.append_results_md(RESULTS_MD, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
