"""`bastion_limiter_degraded` under `bastion serve --workers 2`: back to 0 once Redis returns,
whichever worker answers the scrape, even when a worker died during the outage."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import BASTION, bastion_environment, ready, wait_until
from tests.support import SpareRedis, free_port

WORKERS = 2


def workers(process: subprocess.Popen[bytes]) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        found.extend(int(pid) for pid in (task / "children").read_text().split())
    return sorted(set(found))


@pytest.fixture
def server(
    postgresql_url: str, spare_redis: SpareRedis, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = bastion_environment(
        postgresql_url,
        redis_url=spare_redis.url,
        forgot_password_per_hour="100000",
        rate_limit_per_minute="100000",
        public_url=base,
    )
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [BASTION, "serve", "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: ready(base) and len(workers(process)) == WORKERS, "two ready workers")
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=40)


def limited_requests(base: str, count: int) -> None:
    """Requests that count against the rate limits, each on a new connection, so that the
    kernel spreads them over the workers."""
    for _ in range(count):
        response = httpx.post(
            f"{base}/api/v1/auth/forgot-password", json={"email": "nobody@example.com"}, timeout=10
        )
        assert response.status_code == 202, response.text


def degraded(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "bastion_limiter_degraded":
                return float(sample.value)
    raise AssertionError("no bastion_limiter_degraded in /metrics")


def test_the_degraded_gauge_returns_to_0_after_an_outage_a_worker_did_not_survive(
    server: tuple[str, subprocess.Popen[bytes]], spare_redis: SpareRedis
) -> None:
    base, process = server
    spare_redis.stop()
    limited_requests(base, 20)
    assert [degraded(base) for _ in range(8)] == [1.0] * 8

    victim = workers(process)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(workers(process)) == WORKERS and victim not in workers(process),
        "granian to replace the killed worker",
    )
    spare_redis.start()
    time.sleep(1.2)  # past the limiter's probe interval
    limited_requests(base, 20)

    assert [degraded(base) for _ in range(8)] == [0.0] * 8
