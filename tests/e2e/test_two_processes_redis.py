"""Two server processes sharing one Redis enforce one lockout."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support import STRONG_PASSWORD, free_port, make_settings, random_email

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture
def environment(
    postgresql_url: str, redis_url: str, redis_key_prefix: str, tmp_path: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATABASE_URL=postgresql_url,
        BASTION_REDIS_URL=redis_url,
        BASTION_REDIS_KEY_PREFIX=f"{redis_key_prefix}{secrets.token_hex(4)}:",
        # The database is shared with the other tests: its signing keys are sealed with their key.
        BASTION_SECRET_KEY=str(make_settings(postgresql_url, "smtp://127.0.0.1:25").secret_key),
        BASTION_AUTO_MIGRATE="false",
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
        BASTION_SECRET_KEY_FILE=str(tmp_path / "secret"),
    )
    return env


@pytest.fixture
def two_servers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        processes = []
        for port in ports:
            log = stack.enter_context((tmp_path / f"server-{port}.log").open("w"))
            process = subprocess.Popen(
                [BASTION, "serve", "--port", str(port)],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(process.wait, timeout=30)
            stack.callback(process.terminate)
            processes.append(process)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, process in zip(urls, processes, strict=True):
            wait_until_ready(url, process)
        yield urls


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not become ready")


def test_five_failures_spread_over_two_processes_block_the_ip_on_both(
    environment: dict[str, str], two_servers: list[str]
) -> None:
    email = random_email("two-processes")
    created = subprocess.run(
        [BASTION, "create-user", "--email", email, "--password-stdin"],
        env=environment,
        input=f"{STRONG_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr

    def login(url: str, password: str) -> httpx.Response:
        return httpx.post(
            f"{url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=10
        )

    failures = [login(two_servers[n % 2], "Wrong-Password-1") for n in range(5)]
    assert [r.status_code for r in failures] == [401] * 5
    for url in two_servers:
        blocked = login(url, STRONG_PASSWORD)
        assert blocked.status_code == 429, url
        assert blocked.json()["code"] == "TOO_MANY_ATTEMPTS"
        assert 1700 < int(blocked.headers["Retry-After"]) <= 1800
        ready = httpx.get(f"{url}/readyz", timeout=5).json()
        assert ready["redis"] == "ok"
