"""The drill's outcome: per phase and per fault, the facts, the mail, the leaks, and `met` flags;
as latest.json, a Markdown table, and a section appended to drill/RESULTS.md."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.report import git_commit, machine, now
from drill.config import FAULTS, RECOVERY_LIMIT_SECONDS, RSS_GROWTH_LIMIT, WORKERS
from drill.judge import Findings
from drill.ledger import Record, Verdict
from drill.monitor import Monitor

if TYPE_CHECKING:
    from drill.run import Drill

# bastion.adapters.sql.database.DEFAULT_POOL_SIZE: connections each worker keeps.
POOL_SIZE = 20
VIOLATION_EXAMPLES = 40


@dataclass(frozen=True)
class Phase:
    name: str
    began: float
    ended: float


def phases(drill: Drill, started: float, ended: float) -> list[Phase]:
    """The baseline, then for each fault its window and the recovery after it."""
    found = []
    cursor, name = started, "baseline"
    for fault in drill.faults:
        found.append(Phase(name, cursor, fault.began))
        found.append(Phase(f"during {fault.name}", fault.began, fault.ended))
        cursor, name = fault.ended, f"after {fault.name}"
    found.append(Phase(name, cursor, ended))
    return found


def _phase_row(phase: Phase, records: Sequence[Record], started: float) -> dict[str, Any]:
    inside = [r for r in records if phase.began <= r.started < phase.ended]
    statuses = Counter(str(r.status) if r.status is not None else "no answer" for r in inside)
    verdicts = Counter(r.verdict.value for r in inside)
    answered = sorted(r.seconds * 1000 for r in inside if r.status is not None)
    return {
        # Answered or not: a request stalled until its worker was killed shows here.
        "slowest_s": round(max((r.seconds for r in inside), default=0.0), 2),
        "name": phase.name,
        "from_s": round(phase.began - started, 1),
        "seconds": round(phase.ended - phase.began, 1),
        "requests": len(inside),
        "statuses": dict(sorted(statuses.items())),
        "ok": verdicts.get(Verdict.OK.value, 0),
        "clean_failures": verdicts.get(Verdict.CLEAN.value, 0)
        + verdicts.get(Verdict.CONNECTION.value, 0),
        "violations": verdicts.get(Verdict.VIOLATION.value, 0),
        "latency_ms": _percentiles(answered),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


def _leaks(monitor: Monitor, warmup: float) -> dict[str, Any]:
    """Each worker alive at the end: its RSS after warm-up against its RSS at the end; and
    PostgreSQL's connections at the end against the pools."""
    last = monitor.samples[-1] if monitor.samples else None
    workers = []
    for pid, rss_end in last.rss_mb.items() if last else ():
        warm_at = monitor.first_seen[pid] + warmup
        warm = next(
            (s.rss_mb[pid] for s in monitor.samples if s.at >= warm_at and pid in s.rss_mb), None
        )
        if warm is None or last is None or last.at - warm_at < warmup:
            workers.append(
                {"pid": pid, "rss_end_mb": round(rss_end, 1), "note": "too young to judge"}
            )
            continue
        growth = (rss_end - warm) / warm
        workers.append(
            {
                "pid": pid,
                "rss_after_warmup_mb": round(warm, 1),
                "rss_end_mb": round(rss_end, 1),
                "growth": round(growth, 3),
                "met": growth <= RSS_GROWTH_LIMIT,
            }
        )
    connections = next((s for s in reversed(monitor.samples) if s.pg_connections is not None), None)
    limit = WORKERS * POOL_SIZE
    return {
        "workers": workers,
        "pg_connections_end": connections.pg_connections if connections else None,
        "pg_idle_in_transaction_end": connections.pg_idle_in_transaction if connections else None,
        "pg_connection_limit": limit,
        "pg_connections_met": connections is not None
        and (connections.pg_connections or 0) <= limit
        and not connections.pg_idle_in_transaction,
        "rss_met": all(w.get("met", True) for w in workers) and any("met" in w for w in workers),
    }


def _timeline(
    records: Sequence[Record], monitor: Monitor, started: float, ended: float
) -> list[dict[str, Any]]:
    """Second by second: how requests started in it ended, and what the monitor saw."""
    seconds = int(ended - started) + 1
    counts = [Counter[str]() for _ in range(seconds)]
    durations: list[list[float]] = [[] for _ in range(seconds)]
    for record in records:
        second = int(record.started - started)
        if 0 <= second < seconds:
            counts[second][record.verdict.value] += 1
            durations[second].append(record.seconds)
    samples = {int(s.at - started): s for s in monitor.samples if started <= s.at < ended}
    timeline = []
    for second, count in enumerate(counts):
        sample = samples.get(second)
        timeline.append(
            {
                "s": second,
                **dict(count),
                "p50_ms": round(statistics.median(durations[second]) * 1000, 1)
                if durations[second]
                else None,
                "slowest_s": round(max(durations[second]), 2) if durations[second] else None,
                "ready": sample.ready if sample else None,
                "limiter_degraded": sample.limiter_degraded if sample else None,
                "pg_connections": sample.pg_connections if sample else None,
                "rss_mb": {str(pid): round(mb, 1) for pid, mb in sample.rss_mb.items()}
                if sample
                else {},
            }
        )
    return timeline


def results(
    drill: Drill,
    *,
    started: float,
    ended: float,
    capacity: float,
    rate: float,
    saturated: int,
    nobody_free: int,
    monitor: Monitor,
    findings: Findings,
    mail_waited: float,
    outbox_backlog: int,
) -> dict[str, Any]:
    records = [r for r in drill.ledger.records if r.started >= started]
    violations = [r for r in records if r.verdict is Verdict.VIOLATION]
    # Violations the client found outside the schedule (sizing the load) count too.
    violations += [
        r for r in drill.ledger.records if r.started < started and r.verdict is Verdict.VIOLATION
    ]
    leaks = _leaks(monitor, drill.profile.warmup_seconds)
    faults = [
        {
            "name": fault.name,
            "from_s": round(fault.began - started, 1),
            "seconds": round(fault.ended - fault.began, 1),
            "recovered_after_s": fault.recovered_after,
            "met": fault.recovered_after is not None
            and fault.recovered_after <= RECOVERY_LIMIT_SECONDS,
            "notes": fault.notes,
        }
        for fault in drill.faults
    ]
    lost_by_phase = Counter(
        next(
            (p.name for p in phases(drill, started, ended) if p.began <= lost.at < p.ended),
            "setup or unknown",
        )
        for lost in findings.lost
    )
    rows = [_phase_row(phase, records, started) for phase in phases(drill, started, ended)]
    for row in rows:
        row["lost_facts"] = lost_by_phase.get(row["name"], 0)
    met = {
        "nothing_lost": not [lost for lost in findings.lost if lost.kind != "email"],
        "every_email_arrived": not findings.emails_missing,
        "only_clean_failures": not violations,
        "recovery_within_5s": all(fault["met"] for fault in faults) and len(faults) > 0,
        "no_rss_leak": leaks["rss_met"],
        "pg_connections_back_to_pool": leaks["pg_connections_met"],
    }
    # Timing and memory are judged only on a quiet machine: the short version asserts the facts.
    met["all"] = all(met.values())
    return {
        "meta": {
            "started_at": now(),
            "profile": drill.profile.name,
            "minutes": drill.minutes,
            "machine": machine(),
            "commit": git_commit(),
            "workers": WORKERS,
            "argon2": dict(
                zip(("time_cost", "memory_cost", "parallelism"), drill.profile.argon2, strict=True)
            ),
            "capacity_steps_per_s": round(capacity, 1),
            "rate_steps_per_s": round(rate, 1),
            "steps_not_started_client_saturated": saturated,
            "steps_skipped_nobody_free": nobody_free,
            "users": len(drill.ledger.users),
            "faults": list(drill.fault_names),
            "schedule": {
                "baseline_s": round(drill.schedule.baseline, 1),
                "fault_s": round(drill.schedule.fault, 1),
                "recovery_s": round(drill.schedule.recovery, 1),
            },
        },
        "phases": rows,
        "faults": faults,
        "violations": {
            "by_kind": dict(Counter(f"{r.op}: {r.detail}" for r in violations).most_common()),
            "examples": [
                {
                    "op": r.op,
                    "at_s": round(r.started - started, 2),
                    "status": r.status,
                    "detail": r.detail,
                }
                for r in violations[:VIOLATION_EXAMPLES]
            ],
        },
        "facts": {
            "checked": dict(findings.checked),
            "lost": [{"kind": lost.kind, "detail": lost.detail} for lost in findings.lost],
        },
        "emails": {
            "promised": dict(findings.emails_promised),
            "missing": dict(findings.emails_missing),
            "duplicates": dict(findings.emails_duplicated),
            "unpromised": dict(findings.emails_unpromised),
            "waited_s": round(mail_waited, 1),
            "outbox_backlog_end": outbox_backlog,
        },
        "leaks": leaks,
        "timeline": _timeline(records, monitor, started, ended),
        "met": met,
    }


def render_markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"## {meta['started_at']} — commit {meta['commit']} — {meta['machine']['cpu']}, "
        f"{meta['machine']['cores']} cores — profile {meta['profile']}, {meta['minutes']:g} min"
        + ("" if tuple(meta["faults"]) == FAULTS else f" — faults: {', '.join(meta['faults'])}"),
        "",
        f"Capacity of the mixed workload {meta['capacity_steps_per_s']} steps/s; the schedule "
        f"ran at {meta['rate_steps_per_s']} steps/s ({meta['users']} people). Argon2id "
        f"t={meta['argon2']['time_cost']}, m={meta['argon2']['memory_cost']} KiB.",
        "",
        "| phase | requests | statuses | ok | clean failures | violations | p50 ms | p95 ms "
        "| p99 ms | slowest s | recovery s | lost facts |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    recovery = {
        f"during {fault['name']}": fault["recovered_after_s"] for fault in results["faults"]
    }
    for row in results["phases"]:
        statuses = ", ".join(f"{status}: {count}" for status, count in row["statuses"].items())
        latency = row["latency_ms"]
        recovered = recovery.get(row["name"], "")
        lines.append(
            f"| {row['name']} | {row['requests']} | {statuses} | {row['ok']} "
            f"| {row['clean_failures']} | {row['violations']} | {latency['p50']:.1f} "
            f"| {latency['p95']:.1f} | {latency['p99']:.1f} | {row['slowest_s']} "
            f"| {'not within the wait' if recovered is None else recovered} | {row['lost_facts']} |"
        )
    emails = results["emails"]
    lines += [
        "",
        "Emails promised: "
        + (", ".join(f"{kind} {count}" for kind, count in emails["promised"].items()) or "none")
        + f"; missing: {sum(emails['missing'].values())}; duplicates: "
        + (", ".join(f"{kind} {count}" for kind, count in emails["duplicates"].items()) or "none")
        + f" (all arrived {emails['waited_s']} s after the schedule ended; outbox backlog "
        f"{emails['outbox_backlog_end']}).",
        "",
        "Facts checked: "
        + ", ".join(f"{kind} {count}" for kind, count in results["facts"]["checked"].items())
        + f"; lost: {len(results['facts']['lost'])}.",
        "",
    ]
    leaks = results["leaks"]
    workers = "; ".join(
        f"worker {w['pid']}: {w.get('rss_after_warmup_mb', '—')} → {w['rss_end_mb']} MB"
        + (f" ({w['growth']:+.1%})" if "growth" in w else f" ({w.get('note', '')})")
        for w in leaks["workers"]
    )
    lines += [
        f"Memory: {workers}. PostgreSQL connections at the end: {leaks['pg_connections_end']} "
        f"(pools: {leaks['pg_connection_limit']}), idle in transaction: "
        f"{leaks['pg_idle_in_transaction_end']}.",
        "",
    ]
    if results["violations"]["by_kind"]:
        lines += ["Violations:", ""]
        lines += [f"- {kind}: {count}" for kind, count in results["violations"]["by_kind"].items()]
        lines.append("")
    lines += ["| promise | met |", "|---|---|"]
    lines += [
        f"| {key.replace('_', ' ')} | {'yes' if value else '**no**'} |"
        for key, value in results["met"].items()
        if key != "all"
    ]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
