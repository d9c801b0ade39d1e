"""Turning a run's measurements into targets, a Markdown table, latest.json and RESULTS.md."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import REPO

# A phase with more unexpected responses than this measured something else (errors, 429s).
MAX_UNEXPECTED_FRACTION = 0.01
# Processes outside the bench using more than this many cores make a phase's figures suspect.
MAX_OTHER_CPU_CORES = 0.1

Phase = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One row of the issue's target table; `value` is None when its inputs were not measured."""

    key: str
    label: str
    target: str
    value: float | None
    met: bool
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        entry: dict[str, object] = {"value": self.value, "target": self.target, "met": self.met}
        if self.note:
            entry["note"] = self.note
        return entry


def machine() -> dict[str, object]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cores": os.cpu_count()}


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else "uncommitted"


def targets(results: Mapping[str, Any]) -> list[Target]:
    """Evaluate every target of issue 6 against a run's `results`."""
    phases: Mapping[str, Phase] = results["phases"]
    peer: Mapping[str, Phase] = results.get("peer_phases") or {}
    hash_rate = results["ceilings"]["hash"]["per_second"]
    http_rate = results["ceilings"]["http"]["rps"]
    login = phases["login_c_high"]
    verify = phases["verify_token_c_high"]
    login_page = phases["login_page"]
    rss = results["memory"]["bastion_peak_rss_mb"]

    rows = [
        _row(
            "login_per_hash_ceiling",
            "login throughput ÷ hash ceiling",
            "≥ 0.85",
            [login],
            login["rps"] / hash_rate,
            lambda v: v >= 0.85,
        ),
        _row(
            "login_p95_ms_c_low",
            f"login p95 at concurrency {phases['login_c_low']['concurrency']}",
            "< 150 ms",
            [phases["login_c_low"]],
            phases["login_c_low"]["latency_ms"]["p95"],
            lambda v: v < 150,
        ),
        _row(
            "verify_token_per_http_ceiling",
            "verify-token throughput ÷ HTTP ceiling",
            "≥ 0.5",
            [verify],
            verify["rps"] / http_rate,
            lambda v: v >= 0.5,
        ),
        _row(
            "login_page_per_http_ceiling",
            "GET /login (the sign-in page) throughput ÷ HTTP ceiling",
            "≥ 0.3",
            [login_page],
            login_page["rps"] / http_rate,
            lambda v: v >= 0.3,
        ),
        _row(
            "verify_token_rps",
            "verify-token throughput",
            "≥ 1500 req/s",
            [verify],
            verify["rps"],
            lambda v: v >= 1500,
        ),
        _row(
            "verify_token_p95_ms_c_low",
            f"verify-token p95 at concurrency {phases['verify_token_c_low']['concurrency']}",
            "< 10 ms",
            [phases["verify_token_c_low"]],
            phases["verify_token_c_low"]["latency_ms"]["p95"],
            lambda v: v < 10,
        ),
        _row(
            "refresh_p95_ms",
            f"refresh p95 at concurrency {phases['refresh']['concurrency']}",
            "< 50 ms",
            [phases["refresh"]],
            phases["refresh"]["latency_ms"]["p95"],
            lambda v: v < 50,
        ),
        _row(
            "register_per_hash_ceiling",
            "register throughput ÷ hash ceiling",
            "≥ 0.8",
            [phases["register"]],
            phases["register"]["rps"] / hash_rate,
            lambda v: v >= 0.8,
        ),
        _median_ratio(
            "enumeration_unknown_per_wrong_median",
            "unknown-email ÷ wrong-password median login latency",
            phases["enumeration_unknown_email"],
            phases["enumeration_wrong_password"],
        ),
        _median_ratio(
            "enumeration_forgot_unknown_per_existing_median",
            "forgot-password unknown-email ÷ existing-account median latency",
            phases["enumeration_forgot_unknown_email"],
            phases["enumeration_forgot_existing"],
        ),
        _median_ratio(
            "enumeration_resend_unknown_per_unverified_median",
            "resend unknown-email ÷ unverified-account median latency",
            phases["enumeration_resend_unknown_email"],
            phases["enumeration_resend_unverified"],
        ),
        _row(
            "peak_rss_mb_per_worker",
            "peak RSS per worker (largest)",
            "< 200 MB",
            [],
            max(rss) if rss else None,
            lambda v: v < 200,
        ),
    ]
    comparisons = [
        ("login", "login_c_high", "login"),
        ("authenticated_get", "me_c_high", "me"),
        ("register", "register", "register"),
    ]
    for label, ours, theirs in comparisons:
        if theirs in peer:
            rows.append(
                _row(
                    f"bastion_per_peer_{label}",
                    f"Bastion ÷ FastAPI-Users, {label}",
                    "≥ 1.0",
                    [phases[ours], peer[theirs]],
                    phases[ours]["rps"] / peer[theirs]["rps"] if peer[theirs]["rps"] else None,
                    lambda v: v >= 1.0,
                )
            )
        else:
            rows.append(
                Target(
                    f"bastion_per_peer_{label}",
                    f"Bastion ÷ FastAPI-Users, {label}",
                    "≥ 1.0",
                    None,
                    False,
                    "peer not measured (--skip-peer)",
                )
            )
    return rows


def _median_ratio(key: str, label: str, unknown: Phase, known: Phase) -> Target:
    """An enumeration row: the medians of an unknown address and a known one, measured at the
    same time, within 10 % of each other."""
    numerator, denominator = unknown["latency_ms"]["p50"], known["latency_ms"]["p50"]
    return _row(
        key,
        label,
        "0.9 – 1.1",
        [unknown, known],
        numerator / denominator if denominator else None,
        lambda v: 0.9 <= v <= 1.1,
    )


def _row(
    key: str,
    label: str,
    target: str,
    inputs: list[Phase],
    value: float | None,
    met: Callable[[float], bool],
) -> Target:
    invalid = [
        f"{phase['name']}: {phase['unexpected']} of {phase['requests']} responses not "
        f"{phase['expected_status']}"
        for phase in inputs
        if phase["unexpected"] > MAX_UNEXPECTED_FRACTION * max(phase["requests"], 1)
    ]
    if value is None:
        return Target(key, label, target, None, False, "not measured")
    rounded = round(value, 3)
    if invalid:
        return Target(key, label, target, rounded, False, "invalid: " + "; ".join(invalid))
    return Target(key, label, target, rounded, met(value))


def render_markdown(results: Mapping[str, Any], rows: list[Target]) -> str:
    meta = results["meta"]
    lines = [
        f"## {meta['started_at']} — commit {meta['commit']} — {meta['machine']['cpu']}, "
        f"{meta['machine']['cores']} cores — profile {meta['profile']}",
        "",
        f"Lifted limits: {', '.join(f'{k}={v}' for k, v in meta['lifted_limits'].items())}.",
        "",
        f"Hash ceiling: {results['ceilings']['hash']['per_second']:.1f} verifications/s "
        f"({results['ceilings']['hash']['processes']} processes, "
        f"{results['ceilings']['hash']['cpu_ms_per_verification']:.1f} CPU ms each, other CPU "
        f"{results['ceilings']['hash']['other_cpu_cores']:.2f} cores). HTTP ceiling (bare FastAPI "
        f"/ping, granian {meta['workers']} workers): "
        f"{results['ceilings']['http']['rps']:.0f} req/s.",
        "",
        "| phase | conc | req/s | p50 ms | p95 ms | p99 ms | unexpected | worker CPU split "
        "| connections per worker | worker CPU ms/req | wrk CPU (cores) | machine busy "
        "| other CPU (cores) | attempts |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    all_phases = [("", results["ceilings"]["http"])]
    all_phases += [("", phase) for phase in results["phases"].values()]
    all_phases += [("peer ", phase) for phase in (results.get("peer_phases") or {}).values()]
    for prefix, phase in all_phases:
        latency = phase["latency_ms"]
        split = " / ".join(f"{share:.0%}" for share in phase["worker_cpu_share"])
        connections = " / ".join(str(count) for count in phase["worker_connections"])
        lines.append(
            f"| {prefix}{phase['name']} | {phase['concurrency']} | {phase['rps']:.1f} "
            f"| {latency['p50']:.1f} | {latency['p95']:.1f} | {latency['p99']:.1f} "
            f"| {phase['unexpected']} | {split} | {connections} "
            f"| {phase['worker_cpu_ms_per_request']:.2f} "
            f"| {phase['loadgen_cpu_cores']:.2f} "
            f"| {phase['machine_busy']:.0%} | {phase['other_cpu_cores']:.2f} "
            f"| {phase['attempts']} |"
        )
    shared = [
        f"{prefix}{phase['name']} (c={phase['concurrency']}): {phase['other_cpu_cores']:.2f}"
        for prefix, phase in all_phases
        if phase["other_cpu_cores"] > MAX_OTHER_CPU_CORES
    ]
    if shared:
        lines += [
            "",
            "Shared machine: other processes used CPU (cores) during " + "; ".join(shared) + ".",
        ]
    memory = results["memory"]
    lines += [
        "",
        "Peak RSS per Bastion worker: "
        + ", ".join(f"{mb:.0f} MB" for mb in memory["bastion_peak_rss_mb"])
        + (
            "; per FastAPI-Users worker: "
            + ", ".join(f"{mb:.0f} MB" for mb in memory["peer_peak_rss_mb"])
            if memory.get("peer_peak_rss_mb")
            else ""
        )
        + ".",
        "",
        storm_line(results),
        "",
        "| target | value | goal | met |",
        "|---|---:|---|---|",
    ]
    for row in rows:
        value = "—" if row.value is None else f"{row.value:g}"
        met = "yes" if row.met else "**no**"
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| {row.label} | {value} | {row.target} | {met}{note} |")
    return "\n".join(lines) + "\n"


def storm_line(results: Mapping[str, Any]) -> str:
    """Not a target: how the other requests fare while logins saturate the workers."""

    def fared(name: str, phases: Mapping[str, Phase] | None) -> str | None:
        if not phases or "me_beside_login_storm" not in phases:
            return None
        latency = phases["me_beside_login_storm"]["latency_ms"]
        return f"{name} p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms"

    storm = results["phases"]["login_storm"]
    beside = results["phases"]["me_beside_login_storm"]
    answers = [fared("Bastion", results["phases"]), fared("FastAPI-Users", results["peer_phases"])]
    return (
        f"Authenticated GETs beside a login storm ({storm['concurrency']} login connections, "
        f"{beside['concurrency']} GET connections pausing between requests): "
        + "; ".join(answer for answer in answers if answer)
        + "."
    )


def write(results: dict[str, Any], rows: list[Target], output: Path) -> None:
    results["targets"] = {row.key: row.as_dict() for row in rows}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


def append_results_md(path: Path, table: str) -> None:
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\nOne section per `make bench` run, newest last. "
            "See bench/README.md for what each figure means.\n"
        )
    with path.open("a") as handle:
        handle.write("\n" + table)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
