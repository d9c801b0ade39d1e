"""The benchmark harness runs end to end against real PostgreSQL and Redis.

Phases last about a second and nothing about speed is asserted: this guards the harness (wrk
scripts, process handling, report shape), not Bastion's performance. The FastAPI-Users peer is
skipped because installing its venv is a separate, heavy step of `make bench`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PHASES = {
    "login_c_low",
    "login_c_high",
    "verify_token_c_low",
    "verify_token_c_high",
    "me_c_low",
    "me_c_high",
    "login_page",
    "refresh",
    "register",
    "enumeration_unknown_email",
    "enumeration_wrong_password",
    "enumeration_forgot_existing",
    "enumeration_forgot_unknown_email",
    "enumeration_resend_unverified",
    "enumeration_resend_unknown_email",
    "login_storm",
    "me_beside_login_storm",
}
TARGETS = {
    "login_per_hash_ceiling",
    "login_p95_ms_c_low",
    "verify_token_per_http_ceiling",
    "login_page_per_http_ceiling",
    "verify_token_rps",
    "verify_token_p95_ms_c_low",
    "refresh_p95_ms",
    "register_per_hash_ceiling",
    "enumeration_unknown_per_wrong_median",
    "enumeration_forgot_unknown_per_existing_median",
    "enumeration_resend_unknown_per_unverified_median",
    "peak_rss_mb_per_worker",
    "bastion_per_peer_login",
    "bastion_per_peer_authenticated_get",
    "bastion_per_peer_register",
}


def run_bench(output: Path) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--smoke", "--skip-peer"]
        + ["--output", str(output), "--database", f"bastion_bench_smoke_{os.getpid()}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=100)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the bench stop its servers and drop its database before exiting.
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"bench did not finish in 100 s:\n{stderr[-4000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_smoke_run_writes_every_phase_and_target(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the benchmark needs wrk: `make test` installs it (apt-get)"
    output = tmp_path / "latest.json"

    result = run_bench(output)

    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(output.read_text())
    assert set(results["phases"]) == PHASES
    assert set(results["targets"]) == TARGETS
    assert results["ceilings"]["hash"]["per_second"] > 0
    assert results["ceilings"]["http"]["requests"] > 0
    assert len(results["memory"]["bastion_peak_rss_mb"]) == 2
    for name, phase in results["phases"].items():
        assert phase["requests"] > 0, name
        assert set(phase["latency_ms"]) >= {"p50", "p95", "p99"}, name
        # wrk's connections (of every load run at the same time), found in the workers' sockets.
        assert len(phase["worker_connections"]) == 2, name
        assert sum(phase["worker_connections"]) > 0, name
    for target in results["targets"].values():
        assert set(target) >= {"value", "target", "met"}
    assert "| target | value | goal | met |" in result.stdout
