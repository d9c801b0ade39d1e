"""Turning a run's measurements into targets, a Markdown table, latest.json and RESULTS.md."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import REPO, SCALE_ROWS, SCALE_ROWS_REPORTED_ONLY

# A phase with more unexpected responses than this measured something else (errors, 429s).
MAX_UNEXPECTED_FRACTION = 0.01
# --users: a request's p95 on the large tables may be at most this many times its p95 at 1,000.
SCALE_P95_LIMIT = 1.2
# --users: login p95 beside the retention purge may be at most this many times its p95 without.
PURGE_P95_LIMIT = 1.5
# Processes outside the bench using more than this many cores make a phase's figures suspect.
MAX_OTHER_CPU_CORES = 0.1

Phase = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One row of the issue's target table; `value` is None when its inputs were not measured,
    `met` None when the row is reported without a goal."""

    key: str
    label: str
    target: str
    value: float | None
    met: bool | None
    note: str = ""
    # A ratio measured in pairs: each pair's value; `value` is their median.
    pairs: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, object]:
        entry: dict[str, object] = {"value": self.value, "target": self.target, "met": self.met}
        if self.pairs:
            entry["pairs"] = list(self.pairs)
            entry["spread"] = [min(self.pairs), max(self.pairs)]
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
    """Evaluate every target of issue 6 against a run's `results`; the ratios are medians over
    the pairs, each measured side by side."""
    phases: Mapping[str, Phase] = results["phases"]
    pairs: list[Mapping[str, Any]] = results["pairs"]
    rss = results["memory"]["bastion_peak_rss_mb"]

    def hash_rate(pair: Mapping[str, Any]) -> float:
        return float(pair["hash_ceiling"]["per_second"])

    def rps(key: str) -> Callable[[Mapping[str, Any]], float | None]:
        return lambda pair: pair[key]["rps"]

    def ratio(
        ours: str, theirs: Callable[[Mapping[str, Any]], float]
    ) -> Callable[[Mapping[str, Any]], float | None]:
        def value(pair: Mapping[str, Any]) -> float | None:
            base = theirs(pair)
            return pair[ours]["rps"] / base if base else None

        return value

    rows = [
        _paired(
            "login_per_hash_ceiling",
            "login throughput ÷ hash ceiling",
            "≥ 0.85",
            pairs,
            ["login_c_high"],
            ratio("login_c_high", hash_rate),
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
        _paired(
            "login_totp_per_password_login",
            "login with password + TOTP ÷ password-only login (logins/s, Python client)",
            "≥ 0.95",
            pairs,
            ["login_totp", "login_password_py"],
            ratio("login_totp", lambda pair: float(pair["login_password_py"]["rps"])),
            lambda v: v >= 0.95,
        ),
        _paired(
            "passkey_login_per_password_login",
            "passkey logins/s ÷ password logins/s (Python client, "
            f"{client_cpu(pairs, 'login_passkey')} cores of client CPU beside the passkey logins)",
            "≥ 10",
            pairs,
            ["login_passkey", "login_password_py"],
            ratio("login_passkey", lambda pair: float(pair["login_password_py"]["rps"])),
            lambda v: v >= 10,
        ),
        _paired(
            "verify_token_per_http_ceiling",
            "verify-token throughput ÷ HTTP ceiling",
            "≥ 0.5",
            pairs,
            ["verify_token_c_high", "http_ceiling"],
            ratio("verify_token_c_high", lambda pair: float(pair["http_ceiling"]["rps"])),
            lambda v: v >= 0.5,
        ),
        _paired(
            "login_page_per_http_ceiling",
            "GET /login (the sign-in page) throughput ÷ HTTP ceiling",
            "≥ 0.3",
            pairs,
            ["login_page", "http_ceiling"],
            ratio("login_page", lambda pair: float(pair["http_ceiling"]["rps"])),
            lambda v: v >= 0.3,
        ),
        _paired(
            "verify_token_rps",
            "verify-token throughput",
            "≥ 1500 req/s",
            pairs,
            ["verify_token_c_high"],
            rps("verify_token_c_high"),
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
        _paired(
            "register_per_hash_ceiling",
            "register throughput ÷ hash ceiling",
            "≥ 0.8",
            pairs,
            ["register"],
            ratio("register", hash_rate),
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
    rows += task_service_targets(results)
    comparisons = [
        ("login", "login_c_high", "peer_login"),
        ("authenticated_get", "me_c_high", "peer_me"),
        ("register", "register", "peer_register"),
    ]
    for label, ours, theirs in comparisons:
        key, text = f"bastion_per_peer_{label}", f"Bastion ÷ FastAPI-Users, {label}"
        if results.get("peer_phases") is None:
            rows.append(Target(key, text, "≥ 1.0", None, False, "peer not measured (--skip-peer)"))
            continue
        rows.append(
            _paired(
                key,
                text,
                "≥ 1.0",
                pairs,
                [ours, theirs],
                ratio(ours, lambda pair, theirs=theirs: float(pair[theirs]["rps"])),
                lambda v: v >= 1.0,
            )
        )
    return rows


def task_service_targets(results: Mapping[str, Any]) -> list[Target]:
    """examples/task-service: what the verifier costs a request, and how soon a logout in Bastion
    reaches it through the event stream."""
    phases: Mapping[str, Phase] = results["phases"]
    protected = phases.get("task_service_protected")
    unprotected = phases.get("task_service_unprotected")
    ratio = None
    inputs: list[Phase] = []
    if protected is not None and unprotected is not None and unprotected["rps"]:
        ratio = protected["rps"] / unprotected["rps"]
        inputs = [protected, unprotected]
    revocation = results.get("revocation") or {}
    logouts = revocation.get("logouts", 0)
    return [
        _row(
            "task_service_protected_per_unprotected",
            "example service: protected GET (verifier, offline + events) ÷ unprotected GET",
            "≥ 0.8",
            inputs,
            ratio,
            lambda v: v >= 0.8,
        ),
        _row(
            "revocation_p99_ms",
            f"revocation propagation p99 (logout until the example refuses), {logouts} logouts",
            "< 1000 ms",
            [],
            revocation.get("p99_ms"),
            lambda v: v < 1000,
        ),
    ]


def client_cpu(pairs: list[Mapping[str, Any]], key: str) -> str:
    """The load generator's CPU (cores) in each pair's phase, e.g. "0.61 / 0.64"."""
    return " / ".join(f"{pair[key]['loadgen_cpu_cores']:.2f}" for pair in pairs if key in pair)


def _paired(
    key: str,
    label: str,
    target: str,
    pairs: list[Mapping[str, Any]],
    inputs: list[str],
    value: Callable[[Mapping[str, Any]], float | None],
    met: Callable[[float], bool],
) -> Target:
    """A target measured once per pair: the median of the pairs, judged like a single value."""
    values = [value(pair) for pair in pairs]
    measured = [v for v in values if v is not None]
    phases = [pair[key_] for pair in pairs for key_ in inputs]
    median = statistics.median(measured) if measured else None
    row = _row(key, label, target, phases, median, met)
    return replace(row, pairs=tuple(round(v, 3) for v in measured))


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
    pairs = results["pairs"]
    hashes = [pair["hash_ceiling"] for pair in pairs]
    lines = [
        _heading(meta),
        "",
        f"Lifted limits: {', '.join(f'{k}={v}' for k, v in meta['lifted_limits'].items())}.",
        "",
        "Hash ceiling, pair by pair: "
        + ", ".join(f"{h['per_second']:.1f}" for h in hashes)
        + f" verifications/s ({hashes[0]['processes']} processes, "
        + ", ".join(f"{h['cpu_ms_per_verification']:.1f}" for h in hashes)
        + " CPU ms each, other CPU "
        + ", ".join(f"{h['other_cpu_cores']:.2f}" for h in hashes)
        + " cores). HTTP ceiling (bare FastAPI /ping, granian "
        + f"{meta['workers']} workers): "
        + ", ".join(f"{pair['http_ceiling']['rps']:.0f}" for pair in pairs)
        + " req/s.",
        "",
        "| phase | conc | req/s | p50 ms | p95 ms | p99 ms | unexpected | worker CPU split "
        "| connections per worker | worker CPU ms/req | client CPU (cores) | machine busy "
        "| other CPU (cores) | attempts |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    measured = [phase for pair in pairs for key, phase in pair.items() if key != "hash_ceiling"]
    measured += list(results["phases"].values())
    measured += [
        {**phase, "name": f"peer {phase['name']}"}
        for phase in (results.get("peer_phases") or {}).values()
    ]
    lines += [_phase_line(phase) for phase in measured]
    shared = [
        f"{phase['name']} (c={phase['concurrency']}): {phase['other_cpu_cores']:.2f}"
        for phase in measured
        if phase["other_cpu_cores"] > MAX_OTHER_CPU_CORES
    ]
    if shared:
        lines += [
            "",
            "Shared machine: other processes used CPU (cores) during " + "; ".join(shared) + ".",
        ]
    stalled = [
        f"{phase['name']}: {phase['stalled_s']:.2f} s"
        for phase in measured
        if phase.get("stalled_s", 0) >= 0.01
    ]
    if stalled:
        lines += [
            "",
            "Too few TOTP users: connections waited for the next 30 s step (summed over "
            "connections) in " + "; ".join(stalled) + ". Raise `totp_users` in bench/config.py.",
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
    ]
    lines += _targets_table(rows)
    return "\n".join(lines) + "\n"


def _heading(meta: Mapping[str, Any]) -> str:
    return (
        f"## {meta['started_at']} — commit {meta['commit']} — {meta['machine']['cpu']}, "
        f"{meta['machine']['cores']} cores — profile {meta['profile']}"
    )


def _phase_line(phase: Phase) -> str:
    latency = phase["latency_ms"]
    split = " / ".join(f"{share:.0%}" for share in phase["worker_cpu_share"])
    connections = " / ".join(str(count) for count in phase["worker_connections"])
    return (
        f"| {phase['name']} | {phase['concurrency']} | {phase['rps']:.1f} "
        f"| {latency['p50']:.1f} | {latency['p95']:.1f} | {latency['p99']:.1f} "
        f"| {phase['unexpected']} | {split} | {connections} "
        f"| {phase['worker_cpu_ms_per_request']:.2f} "
        f"| {phase['loadgen_cpu_cores']:.2f} "
        f"| {phase['machine_busy']:.0%} | {phase['other_cpu_cores']:.2f} "
        f"| {phase['attempts']} |"
    )


def _targets_table(rows: list[Target]) -> list[str]:
    """The targets; a ratio measured in pairs shows each pair and the spread of the median."""
    lines = ["| target | value | pairs | goal | met |", "|---|---:|---|---|---|"]
    for row in rows:
        value = "—" if row.value is None else f"{row.value:g}"
        pairs = ""
        if row.pairs:
            pairs = (
                " / ".join(f"{v:g}" for v in row.pairs)
                + f" (spread {max(row.pairs) - min(row.pairs):.3g})"
            )
        met = "—" if row.met is None else "yes" if row.met else "**no**"
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| {row.label} | {value} | {pairs} | {row.target} | {met}{note} |")
    return lines


def scale_targets(results: Mapping[str, Any]) -> list[Target]:
    """The --users profile's targets: each request's p95 on the large tables within 1.2 times
    its p95 on the small ones (the email search's ratio is reported, its goal is the plan's),
    and every statement planned with an index. Ratios are medians over the pairs."""
    scale = results["scale"]
    labels = scale["labels"]
    rows = []
    for key, label in SCALE_ROWS:
        reported_only = key in SCALE_ROWS_REPORTED_ONLY
        row = _paired(
            f"{key}_p95_large_per_small",
            f"{label}: p95 at {labels['large']} ÷ p95 at {labels['small']}",
            "reported" if reported_only else f"≤ {SCALE_P95_LIMIT}",
            _sides_of(scale["pairs"], key),
            ["small", "large"],
            lambda pair: _p95_ratio(pair["large"], pair["small"]),
            lambda v: v <= SCALE_P95_LIMIT,
        )
        # Measured with unexpected responses, or not at all, it still fails.
        rows.append(replace(row, met=None) if reported_only and not row.note else row)
    plans = scale["explain"]
    failing = [plan for plan in plans if not plan["met"]]
    rows.append(
        Target(
            "statements_planned_with_an_index",
            "statements planned with an index (custom and generic plans)",
            "all",
            float(len(plans) - len(failing)),
            bool(plans) and not failing,
            "; ".join(f"{plan['request']}: {plan['note']}" for plan in failing),
        )
    )
    search = [plan for plan in plans if "email search" in plan["request"]]
    rows.append(
        Target(
            "admin_email_search_uses_trigram_index",
            "admin email search through the trigram index, not a walk of the users",
            "yes",
            None,
            bool(search) and all(plan["met"] for plan in search),
        )
    )
    purge = scale["purge"]
    row = _paired(
        "login_p95_during_purge_per_without",
        f"login p95 beside a purge of {purge['rows_of_each_kind']:,} rows of each kind ÷ without",
        f"≤ {PURGE_P95_LIMIT}",
        purge["pairs"],
        ["login_without", "login_during"],
        lambda pair: _p95_ratio(pair["login_during"], pair["login_without"]),
        lambda v: v <= PURGE_P95_LIMIT,
    )
    if not all(pair["outlasted_the_phase"] for pair in purge["pairs"]):
        row = replace(row, met=False, note="the purge ended before the phases beside it did")
    rows.append(row)
    return rows


def _sides_of(pairs: list[Mapping[str, Any]], key: str) -> list[dict[str, Phase]]:
    return [{side: pair[side][key] for side in ("small", "large")} for pair in pairs]


def _p95_ratio(numerator: Phase, denominator: Phase) -> float | None:
    p95 = denominator["latency_ms"]["p95"]
    return numerator["latency_ms"]["p95"] / p95 if p95 else None


def _medians(phases: list[Phase]) -> str:
    """A size's cells of the table: the median req/s and the median p95 of its phases."""
    rps = statistics.median(phase["rps"] for phase in phases)
    p95 = statistics.median(phase["latency_ms"]["p95"] for phase in phases)
    return f"{rps:.1f} | {p95:.1f}"


def render_scale_markdown(results: Mapping[str, Any], rows: list[Target]) -> str:
    scale = results["scale"]
    small, large = scale["labels"]["small"], scale["labels"]["large"]
    pairs = scale["pairs"]
    lines = [
        _heading(results["meta"]) + f" — users {small} and {large}, {len(pairs)} pairs",
        "",
        "Medians of the pairs; each pair measured the two sizes one after the other, the order "
        "flipping from pair to pair. The ratio is the median of the pairs' ratios.",
        "",
        f"| request | conc | req/s at {small} | p95 ms at {small} | req/s at {large} "
        f"| p95 ms at {large} | p95 ratio | unexpected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = {row.key: row for row in rows}
    for key, label in SCALE_ROWS:
        sides = _sides_of(pairs, key)
        before = [pair["small"] for pair in sides]
        after = [pair["large"] for pair in sides]
        ratio = ratios[f"{key}_p95_large_per_small"].value
        lines.append(
            f"| {label} | {before[0]['concurrency']} | {_medians(before)} | {_medians(after)} "
            f"| {'—' if ratio is None else f'{ratio:.2f}'} "
            f"| {sum(p['unexpected'] for p in before)} / {sum(p['unexpected'] for p in after)} |"
        )
    lines += [
        "",
        f"How PostgreSQL plans each statement at {large} users (custom plan; generic plan when "
        "it differs):",
        "",
        "| request | plan | indexed |",
        "|---|---|---|",
    ]
    for plan in scale["explain"]:
        shown = " → ".join(plan["custom"])
        if plan["generic"] != plan["custom"]:
            shown += "; generic: " + " → ".join(plan["generic"])
        indexed = "yes" if plan["met"] else f"**no** ({plan['note']})"
        lines.append(f"| {plan['request']} | {shown} | {indexed} |")
    purge = scale["purge"]
    lines += [
        "",
        f"Retention purge of {purge['rows_of_each_kind']:,} aged audit events and as many ended "
        f"sessions: {purge['seconds']} s of running (`{purge['said']}`), stopped for each phase "
        "without it.",
        "",
        "| login | conc | req/s | p50 ms | p95 ms | unexpected |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for number, pair in enumerate(purge["pairs"], start=1):
        for name, phase in (
            (f"without purge ({number})", pair["login_without"]),
            (f"during purge ({number})", pair["login_during"]),
        ):
            lines.append(
                f"| {name} | {phase['concurrency']} | {phase['rps']:.1f} "
                f"| {phase['latency_ms']['p50']:.1f} | {phase['latency_ms']['p95']:.1f} "
                f"| {phase['unexpected']} |"
            )
    lines.append("")
    lines += _targets_table(rows)
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


def append_results_md(
    path: Path, table: str, title: str = "Benchmark", make: str = "bench"
) -> None:
    """Add a run's section to a results file, started with its heading if new."""
    if not path.exists():
        path.write_text(
            f"# {title} results\n\nOne section per `make {make}` run, newest last. "
            f"See {make}/README.md for what each figure means.\n"
        )
    with path.open("a") as handle:
        handle.write("\n" + table)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
