"""The fault drill's short version: each fault once, briefly, under a light mixed load.

It asserts only the facts the client can judge (nothing acknowledged lost, every promised email
delivered, only clean failures, service back after every fault), never timing or memory: those
are judged by `make drill` on a quiet machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import run_bounded

FAULTS = {
    "postgres_restarted",
    "postgres_partitioned",
    "redis_stopped",
    "smtp_down_then_slow",
    "worker_killed",
    "rolling_restart",
}
RUN_TIMEOUT_SECONDS = 300


def run_drill(output: Path) -> subprocess.CompletedProcess[str]:
    return run_bounded(
        [sys.executable, "-m", "drill.run", "--short", "--output", str(output)]
        + ["--database", f"bastion_drill_short_{os.getpid()}"],
        RUN_TIMEOUT_SECONDS,
        "the drill",
    )


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 90)
def test_nothing_acknowledged_is_lost_and_service_returns_after_every_fault(
    tmp_path: Path,
) -> None:
    assert shutil.which("redis-server"), "the drill needs redis-server: `make test` installs it"
    output = tmp_path / "latest.json"

    result = run_drill(output)

    assert output.exists(), result.stderr[-4000:]
    results = json.loads(output.read_text())
    assert {fault["name"] for fault in results["faults"]} == FAULTS
    assert results["facts"]["lost"] == []
    assert results["met"]["nothing_lost"]
    assert results["emails"]["missing"] == {}, results["emails"]
    assert results["violations"]["by_kind"] == {}
    for fault in results["faults"]:
        assert fault["recovered_after_s"] is not None, fault
    # The ledger saw real traffic through every phase, faults included.
    assert all(phase["requests"] > 0 for phase in results["phases"])
    assert results["facts"]["checked"]["registration"] > 0
    assert "| phase | requests |" in result.stdout
