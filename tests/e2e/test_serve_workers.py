"""`bastion serve --workers 2` on PostgreSQL: metrics add up across worker processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving import BASTION, bastion_environment, ready, wait_until
from tests.support import free_port

REQUESTS = 40


@dataclass(frozen=True)
class Server:
    base: str
    metrics_dir: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def two_workers(postgresql_url: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = bastion_environment(postgresql_url, public_url=base)
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [BASTION, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "pool their metrics in" in log.read_text(), "the start-up message")
        found = re.search(r"pool their metrics in (\S+)", log.read_text())
        assert found
        metrics_dir = Path(found.group(1))
        wait_until(lambda: ready(base), "readiness")
        # Each worker creates its files when it builds its metrics: both workers are up.
        wait_until(lambda: len(list(metrics_dir.glob("counter_*.db"))) == 2, "two workers")
        yield Server(base, metrics_dir, process)
    finally:
        process.terminate()
        process.wait(timeout=40)


def requests_to(text: str, route: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bastion_http_requests_total" and sample.labels["route"] == route
    )


def test_every_scrape_counts_the_requests_of_both_workers(two_workers: Server) -> None:
    for _ in range(REQUESTS):
        # A new connection each time, so that the kernel spreads them over the workers.
        with httpx.Client() as client:
            assert client.get(f"{two_workers.base}/healthz").status_code == 200
    scrapes = []
    for _ in range(6):
        with httpx.Client() as client:
            scrapes.append(requests_to(client.get(f"{two_workers.base}/metrics").text, "/healthz"))
    assert scrapes[0] >= REQUESTS
    assert len(set(scrapes)) == 1, scrapes


def test_sigterm_lets_an_in_flight_request_finish_and_exits_cleanly(two_workers: Server) -> None:
    port = int(two_workers.base.rsplit(":", 1)[1])
    body = json.dumps({"email": "nobody@example.com", "password": "Wrong-Horse-7"}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        # A first exchange on the connection proves a worker is serving it.
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: bastion\r\n\r\n")
        assert response_status(connection) == 200
        # Half a login request: in flight when the signal arrives.
        connection.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bastion\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.3)
        two_workers.process.terminate()
        time.sleep(0.3)
        connection.sendall(body[10:])
        assert response_status(connection) == 401
    assert two_workers.process.wait(timeout=40) == 0
    assert not two_workers.metrics_dir.exists()


def response_status(connection: socket.socket) -> int:
    """The status of the next response on a raw HTTP/1.1 connection (its body is skipped)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    assert length, head
    while len(rest) < int(length.group(1)):
        rest += connection.recv(65536)
    return int(head.split()[1])
