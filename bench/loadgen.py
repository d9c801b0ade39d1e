"""The load generator: wrk driven by the Lua scenarios in bench/lua, one closed-loop run per phase.

Every run is bounded by wrk's own duration plus a hard timeout, and is measured from outside
the server: wrk's CPU time (wait4), each worker's CPU time (/proc), and the machine's busy time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from urllib.parse import urlsplit

from bench import procs
from bench.config import BENCH_DIR

LUA_DIR = BENCH_DIR / "lua"
CONNECTIONS_SAMPLED_AFTER_SECONDS = 1.0
LuaValue = str | int | bool | Sequence[str]


@dataclass(frozen=True)
class Scenario:
    """One wrk script (a file in bench/lua) with the parameters it reads as Lua globals."""

    script: str
    params: Mapping[str, LuaValue]
    expected_status: int


@dataclass(frozen=True)
class PhaseResult:
    """What one phase measured; `requests` counts every response, expected or not."""

    name: str
    concurrency: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    expected_status: int
    statuses: dict[str, int]
    unexpected: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    loadgen_cpu_cores: float
    worker_cpu_share: list[float]
    # Keep-alive connections stay where they were accepted: a worker holding more of them than
    # its share answers each one more slowly, whatever its CPU share. Loads run together
    # share the count, as they share the CPU split.
    worker_connections: list[int]
    # Less sensitive than req/s to other processes on the machine: they take time, not CPU.
    worker_cpu_ms_per_request: float
    machine_busy: float
    other_cpu_cores: float
    attempts: int = 1
    # bench/pyload.py only: seconds its connections waited for a TOTP step with an unused user.
    stalled_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: run `make bench` or `apt-get install -y wrk`")
    return path


def render(scenario: Scenario) -> str:
    """The complete script: shared prelude, parameters as Lua globals, then the scenario."""
    params = "\n".join(f"{name} = {_lua(value)}" for name, value in scenario.params.items())
    prelude = (LUA_DIR / "common.lua").read_text()
    body = (LUA_DIR / f"{scenario.script}.lua").read_text()
    return f"{prelude}\n{params}\n{body}"


def _lua(value: LuaValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # A JSON string literal is a valid Lua literal for the ASCII we generate.
        return json.dumps(value)
    return "{" + ", ".join(json.dumps(item) for item in value) + "}"


@dataclass(frozen=True)
class Load:
    """One wrk process: a named scenario at a concurrency."""

    name: str
    scenario: Scenario
    concurrency: int
    threads: int


def run_together(
    url: str, loads: Sequence[Load], *, seconds: int, server_group: int, workers: Sequence[int]
) -> list[PhaseResult]:
    """Run one wrk per load at the same time, so they see the same server conditions.

    Worker CPU split, machine busy time and other processes' CPU are shared by all of them;
    wrk CPU is each one's own.
    """
    own_groups = {os.getpgrp(), server_group}
    with contextlib.ExitStack() as files:
        started_loads = []
        workers_before = [procs.cpu_seconds(pid) for pid in workers]
        busy_before = procs.machine_busy_ticks()
        foreign_before = procs.foreign_cpu_seconds(own_groups)
        started = time.monotonic()
        try:
            for load in loads:
                script = files.enter_context(
                    tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-")
                )
                script.write(render(load.scenario))
                script.flush()
                output = files.enter_context(tempfile.TemporaryFile())
                threads = min(load.threads, load.concurrency)
                argv = [ensure_wrk(), f"-t{threads}", f"-c{load.concurrency}", f"-d{seconds}s"]
                argv += ["--timeout", "10s", "-s", script.name, url]
                process = subprocess.Popen(
                    argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
                )
                started_loads.append((load, threads, process, output))
                own_groups.add(process.pid)
            # Counted once wrk has opened its connections, well before the phase ends.
            time.sleep(min(CONNECTIONS_SAMPLED_AFTER_SECONDS, seconds / 2))
            connections = procs.established_connections(workers, urlsplit(url).port or 80)
            usages = [
                procs.wait_with_usage(process, timeout=seconds + 30)
                for _, _, process, _ in started_loads
            ]
        finally:
            for _, _, process, _ in started_loads:
                if process.returncode is None:
                    procs.stop(process, grace_seconds=2.0)
        wall = time.monotonic() - started
        other = procs.growth(foreign_before, procs.foreign_cpu_seconds(own_groups)) / wall
        busy_after = procs.machine_busy_ticks()
        workers_after = [procs.cpu_seconds(pid) for pid in workers]
        deltas = [
            after - before for before, after in zip(workers_before, workers_after, strict=True)
        ]
        busy = (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1)
        results = []
        for (load, threads, _, output), usage in zip(started_loads, usages, strict=True):
            output.seek(0)
            text = output.read().decode(errors="replace")
            if usage.returncode != 0:
                raise RuntimeError(f"wrk failed ({usage.returncode}) in {load.name}:\n{text}")
            results.append(
                _result(
                    load.name,
                    text,
                    scenario=load.scenario,
                    concurrency=load.concurrency,
                    threads=threads,
                    loadgen_cpu_cores=usage.cpu_seconds / wall,
                    worker_deltas=deltas,
                    worker_connections=connections,
                    busy=busy,
                    other=other,
                )
            )
        # Loads run together share the workers, so their CPU is spread over all their responses.
        responses = sum(result.requests for result in results)
        cpu_ms = round(sum(deltas) * 1000 / responses, 3) if responses else 0.0
        return [replace(result, worker_cpu_ms_per_request=cpu_ms) for result in results]


def _result(
    name: str,
    text: str,
    *,
    scenario: Scenario,
    concurrency: int,
    threads: int,
    loadgen_cpu_cores: float,
    worker_deltas: list[float],
    worker_connections: list[int],
    busy: float,
    other: float,
) -> PhaseResult:
    line = next((line for line in text.splitlines() if line.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary in phase {name}:\n{text}")
    summary = json.loads(line.removeprefix("BENCH_JSON "))
    duration = summary["duration_us"] / 1e6
    statuses: dict[str, int] = summary["statuses"]
    expected = statuses.get(str(scenario.expected_status), 0)
    total_worker_cpu = sum(worker_deltas)
    return PhaseResult(
        name=name,
        concurrency=concurrency,
        threads=threads,
        duration_s=round(duration, 3),
        requests=summary["requests"],
        rps=round(expected / duration, 2) if duration else 0.0,
        expected_status=scenario.expected_status,
        statuses=statuses,
        unexpected=summary["requests"] - expected,
        socket_errors=summary["socket_errors"],
        latency_ms=summary["latency_ms"],
        loadgen_cpu_cores=round(loadgen_cpu_cores, 3),
        worker_cpu_share=[
            round(delta / total_worker_cpu, 3) if total_worker_cpu else 0.0
            for delta in worker_deltas
        ],
        worker_connections=worker_connections,
        worker_cpu_ms_per_request=0.0,
        machine_busy=round(busy, 3),
        other_cpu_cores=round(other, 3),
    )


def scenario_get(path: str, tokens: Sequence[str] = (), *, pause_ms: int = 0) -> Scenario:
    return Scenario(
        "get", {"PATH": path, "TOKENS": list(tokens), "PAUSE_MS": pause_ms}, expected_status=200
    )


def scenario_credentials(
    path: str,
    *,
    password: str,
    emails: Sequence[str] = (),
    email_prefix: str = "",
    email_domain: str = "",
    form: bool = False,
    remember_me: bool = False,
    expected_status: int = 200,
) -> Scenario:
    return Scenario(
        "credentials",
        {
            "PATH": path,
            "FORMAT": "form" if form else "json",
            "EMAILS": list(emails),
            "EMAIL_PREFIX": email_prefix,
            "EMAIL_DOMAIN": email_domain,
            "PASSWORD": password,
            "REMEMBER_ME": remember_me,
        },
        expected_status=expected_status,
    )


def scenario_address(
    path: str,
    *,
    emails: Sequence[str] = (),
    email_prefix: str = "",
    email_domain: str = "",
    expected_status: int = 202,
) -> Scenario:
    """POST ``{"email": ...}`` alone (forgot-password, resend), over known or new addresses."""
    return scenario_credentials(
        path,
        password="",
        emails=emails,
        email_prefix=email_prefix,
        email_domain=email_domain,
        expected_status=expected_status,
    )


def scenario_refresh(path: str, cookie_name: str, cookies: Sequence[str]) -> Scenario:
    return Scenario(
        "refresh",
        {"PATH": path, "COOKIE_NAME": cookie_name, "COOKIES": list(cookies)},
        expected_status=200,
    )
