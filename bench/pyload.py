"""A Python load generator for the logins wrk's Lua cannot make: a TOTP code per login, a
passkey assertion signed per login.

Each phase runs `processes` copies of `python -m bench.pyload`, each an asyncio loop of closed-loop
connections (httpx, keep-alive, no cookie jar: every login is a stranger's, as wrk's are). One
completed flow is one login, of one or two requests: password (`POST /login` → 200), TOTP
(`POST /login` → 403 MFA_REQUIRED, `POST /login/mfa` with the current code → 200) or passkey
(`POST /passkey/options`, sign, `POST /passkey/login` → 200). A flow counts as expected when its
last answer is 200; otherwise under the status it stopped at. Latency is the whole flow's.

A TOTP code works once per user and 30-second step, so every connection owns users of its own,
takes the next one not yet used in the current step, and waits for the next step when all are
(the time waited is reported as `stalled_s`, and should be 0: give the pool enough users). The
steps spent are handed back to the parent, which keeps them across phases.

The parent measures the children as loadgen.py measures wrk: their CPU from wait4, the workers'
from /proc, the machine's busy time and other processes' CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bench import procs
from bench.config import REPO
from bench.loadgen import PhaseResult

Flow = Literal["password", "totp", "passkey"]
LOGIN = "/api/v1/auth/login"
LOGIN_MFA = "/api/v1/auth/login/mfa"
PASSKEY_OPTIONS = "/api/v1/auth/passkey/options"
PASSKEY_LOGIN = "/api/v1/auth/passkey/login"
TOTP_STEP_SECONDS = 30
Loop = Callable[[Any, list[Any]], Coroutine[Any, Any, None]]
REQUEST_TIMEOUT_SECONDS = 10.0
CONNECTIONS_SAMPLED_AFTER_SECONDS = 1.0
# The children start their connections together, this long after they were launched: time for
# the interpreters to import httpx and cryptography, which is not the phase's load.
STARTUP_SECONDS = 1.0


def current_step() -> int:
    return int(time.time()) // TOTP_STEP_SECONDS


@dataclass
class TotpPool:
    """Users with a confirmed TOTP factor, and the last step each spent (confirming spends one)."""

    secrets: dict[str, str]
    last_step: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowLoad:
    """One phase's logins: the flow, its connections, and what each connection logs in with
    (emails for password, users of the pool for TOTP, exported credentials for passkeys)."""

    name: str
    flow: Flow
    concurrency: int
    processes: int
    password: str = ""
    emails: Sequence[str] = ()
    totp: TotpPool | None = None
    credentials: Sequence[Mapping[str, Any]] = ()
    origin: str = ""


def _jobs(load: FlowLoad, url: str, seconds: float, start_at: float) -> list[dict[str, Any]]:
    """Split the connections over the processes; each connection gets its own users."""
    processes = max(1, min(load.processes, load.concurrency))
    connections: list[list[Any]] = [[] for _ in range(load.concurrency)]
    if load.flow == "totp":
        assert load.totp is not None
        for index, (email, secret) in enumerate(load.totp.secrets.items()):
            connections[index % load.concurrency].append(
                {"email": email, "secret": secret, "last_step": load.totp.last_step.get(email, -1)}
            )
    else:
        items: Sequence[Any] = load.emails if load.flow == "password" else load.credentials
        for index in range(load.concurrency):
            # Every connection rotates over all of them, starting at a different one.
            connections[index] = [items[(index + n) % len(items)] for n in range(len(items))]
    return [
        {
            "url": url,
            "flow": load.flow,
            "seconds": seconds,
            "start_at": start_at,
            "password": load.password,
            "origin": load.origin,
            "connections": connections[number::processes],
        }
        for number in range(processes)
    ]


def run_flow(
    url: str, load: FlowLoad, *, seconds: int, server_group: int, workers: Sequence[int]
) -> PhaseResult:
    """Run one phase of `load` for `seconds`, measured from outside like a wrk phase."""
    own_groups = {os.getpgrp(), server_group}
    start_at = time.time() + STARTUP_SECONDS
    jobs = _jobs(load, url, seconds, start_at)
    with contextlib.ExitStack() as files:
        started_children = []
        workers_before = [procs.cpu_seconds(pid) for pid in workers]
        busy_before = procs.machine_busy_ticks()
        foreign_before = procs.foreign_cpu_seconds(own_groups)
        started = time.monotonic()
        try:
            for job in jobs:
                spec = files.enter_context(tempfile.TemporaryFile("w+"))
                json.dump(job, spec)
                spec.seek(0)
                output = files.enter_context(tempfile.TemporaryFile())
                errors = files.enter_context(tempfile.TemporaryFile())
                process = subprocess.Popen(
                    [sys.executable, "-m", "bench.pyload"],
                    stdin=spec,
                    stdout=output,
                    stderr=errors,
                    cwd=REPO,
                    start_new_session=True,
                )
                started_children.append((process, output, errors))
                own_groups.add(process.pid)
            # Counted once the connections are open, well before the phase ends.
            sample_at = start_at + min(CONNECTIONS_SAMPLED_AFTER_SECONDS, seconds / 2)
            time.sleep(max(0.0, sample_at - time.time()))
            connections = procs.established_connections(workers, urlsplit(url).port or 80)
            usages = [
                procs.wait_with_usage(process, timeout=seconds + 60)
                for process, _, _ in started_children
            ]
        finally:
            for process, _, _ in started_children:
                if process.returncode is None:
                    procs.stop(process, grace_seconds=2.0)
        wall = time.monotonic() - started
        other = procs.growth(foreign_before, procs.foreign_cpu_seconds(own_groups)) / wall
        busy_after = procs.machine_busy_ticks()
        deltas = [
            procs.cpu_seconds(pid) - before
            for pid, before in zip(workers, workers_before, strict=True)
        ]
        busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
        summaries = []
        for (_, output, errors), usage in zip(started_children, usages, strict=True):
            output.seek(0)
            text = output.read().decode(errors="replace")
            if usage.returncode != 0 or not text:
                errors.seek(0)
                raise RuntimeError(
                    f"the Python load generator failed ({usage.returncode}) in {load.name}:\n"
                    + errors.read().decode(errors="replace")[-4000:]
                )
            summaries.append(json.loads(text))
    if load.totp is not None:
        for summary in summaries:
            load.totp.last_step.update(summary["last_steps"])
    # The children's CPU while their connections ran, not their interpreters' start.
    duration = max((summary["duration_s"] for summary in summaries), default=0.0)
    cpu = sum(summary["cpu_s"] for summary in summaries)
    cores = cpu / duration if duration else 0.0
    return _result(load, summaries, cores, deltas, connections, busy, other)


def _result(
    load: FlowLoad,
    summaries: list[dict[str, Any]],
    loadgen_cpu_cores: float,
    deltas: list[float],
    connections: list[int],
    busy: float,
    other: float,
) -> PhaseResult:
    statuses: Counter[str] = Counter()
    socket_errors: Counter[str] = Counter()
    latencies: list[float] = []
    for summary in summaries:
        statuses.update(summary["statuses"])
        socket_errors.update(summary["socket_errors"])
        latencies.extend(summary["latencies_ms"])
    duration = max((summary["duration_s"] for summary in summaries), default=0.0)
    requests = sum(statuses.values())
    expected = statuses.get("200", 0)
    total_cpu = sum(deltas)
    return PhaseResult(
        name=load.name,
        concurrency=load.concurrency,
        threads=len(summaries),
        duration_s=round(duration, 3),
        requests=requests,
        rps=round(expected / duration, 2) if duration else 0.0,
        expected_status=200,
        statuses=dict(statuses),
        unexpected=requests - expected,
        socket_errors=dict(socket_errors),
        latency_ms=_percentiles(latencies),
        loadgen_cpu_cores=round(loadgen_cpu_cores, 3),
        worker_cpu_share=[round(d / total_cpu, 3) if total_cpu else 0.0 for d in deltas],
        worker_connections=connections,
        worker_cpu_ms_per_request=round(total_cpu * 1000 / requests, 3) if requests else 0.0,
        machine_busy=round(busy, 3),
        other_cpu_cores=round(other, 3),
        stalled_s=round(sum(summary["stalled_s"] for summary in summaries), 3),
    )


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 3)

    return {"p50": at(0.5), "p90": at(0.9), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


# The child: `python -m bench.pyload` reads its job as JSON on stdin, prints a summary on stdout.


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    socket_errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    last_steps: dict[str, int] = field(default_factory=dict)
    stalled_s: float = 0.0


def _flows(job: dict[str, Any], tally: Tally) -> Loop:
    """The connection loop of the job's flow: log in over and over until cancelled."""
    import httpx
    import pyotp

    from bench.webauthn_authenticator import SoftwareAuthenticator, import_credential

    password, origin = job["password"], job["origin"]

    async def timed(login: Awaitable[int]) -> None:
        started = time.perf_counter()
        try:
            status = await login
        except httpx.HTTPError as error:
            tally.socket_errors[type(error).__name__] += 1
            return
        tally.statuses[str(status)] += 1
        if status == 200:
            tally.latencies_ms.append(round((time.perf_counter() - started) * 1000, 3))

    async def password_login(client: httpx.AsyncClient, email: str) -> int:
        response = await client.post(LOGIN, json={"email": email, "password": password})
        return response.status_code

    async def totp_login(client: httpx.AsyncClient, email: str, code: str) -> int:
        first = await client.post(LOGIN, json={"email": email, "password": password})
        token = first.json().get("mfa_token") if first.status_code == 403 else None
        if token is None:  # not MFA_REQUIRED: the login stops at this status
            return first.status_code
        body = {"mfa_token": token, "code": code}
        return (await client.post(LOGIN_MFA, json=body)).status_code

    async def passkey_login(client: httpx.AsyncClient, authenticator: Any, key: bytes) -> int:
        options = await client.post(PASSKEY_OPTIONS)
        if options.status_code != 200:
            return options.status_code
        assertion = authenticator.get(options.json(), origin, credential_id=key)
        response = await client.post(PASSKEY_LOGIN, json={"credential": assertion})
        return response.status_code

    async def password_loop(client: httpx.AsyncClient, emails: list[str]) -> None:
        for turn in range(sys.maxsize):
            await timed(password_login(client, emails[turn % len(emails)]))

    async def totp_loop(client: httpx.AsyncClient, users: list[dict[str, Any]]) -> None:
        otps = {user["email"]: pyotp.TOTP(user["secret"]) for user in users}
        last = {user["email"]: user["last_step"] for user in users}
        turn = 0
        while True:
            step = current_step()
            free = [
                users[(turn + n) % len(users)]
                for n in range(len(users))
                if last[users[(turn + n) % len(users)]["email"]] < step
            ]
            if not free:
                waited_from = time.monotonic()
                try:
                    await asyncio.sleep((step + 1) * TOTP_STEP_SECONDS - time.time() + 0.05)
                finally:  # the phase may end (and cancel the wait) first
                    tally.stalled_s += time.monotonic() - waited_from
                continue
            email = free[0]["email"]
            turn = users.index(free[0]) + 1
            last[email] = tally.last_steps[email] = step
            await timed(totp_login(client, email, otps[email].generate_otp(step)))

    async def passkey_loop(client: httpx.AsyncClient, exported: list[dict[str, Any]]) -> None:
        authenticator = SoftwareAuthenticator(synced=True)
        keys = []
        for item in exported:
            credential = import_credential(item)
            authenticator.credentials[credential.credential_id] = credential
            keys.append(credential.credential_id)
        for turn in range(sys.maxsize):
            await timed(passkey_login(client, authenticator, keys[turn % len(keys)]))

    loops: dict[str, Loop] = {
        "password": password_loop,
        "totp": totp_loop,
        "passkey": passkey_loop,
    }
    return loops[job["flow"]]


async def _child(job: dict[str, Any]) -> dict[str, Any]:
    import httpx

    tally = Tally()
    loop = _flows(job, tally)
    connections: list[list[Any]] = [users for users in job["connections"] if users]
    # No cookie jar: a login's device and refresh cookies would change the next login.
    jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=len(connections), max_keepalive_connections=None)
    async with httpx.AsyncClient(
        base_url=job["url"], limits=limits, timeout=REQUEST_TIMEOUT_SECONDS, cookies=jar
    ) as client:
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        cpu_before = time.process_time()
        tasks = [asyncio.create_task(loop(client, users)) for users in connections]
        started = time.monotonic()
        done, pending = await asyncio.wait(tasks, timeout=job["seconds"])
        duration = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a loop that ended early failed: say why
    return {
        "duration_s": duration,
        "cpu_s": cpu,
        "statuses": dict(tally.statuses),
        "socket_errors": dict(tally.socket_errors),
        "latencies_ms": tally.latencies_ms,
        "last_steps": tally.last_steps,
        "stalled_s": tally.stalled_s,
    }


def main() -> int:
    job = json.load(sys.stdin)
    sys.stdout.write(json.dumps(asyncio.run(_child(job))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
