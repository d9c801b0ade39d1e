"""Two real `bastion serve` processes over one PostgreSQL database, as in a scaled deployment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import (
    REFRESH_COOKIE,
    STRONG_PASSWORD,
    bearer,
    free_port,
    make_settings,
    random_email,
    refresh_token_in,
)

BASTION = str(Path(sys.executable).with_name("bastion"))
# Both processes sit behind one public address, so they issue and accept the same tokens.
PUBLIC_URL = "http://auth.localhost"
STARTUP_SECONDS = 30
REVOCATION_DEADLINE_SECONDS = 1.0


@dataclass(frozen=True)
class Deployment:
    environment: dict[str, str]
    a: str
    b: str

    def create_user(self, email: str) -> None:
        result = subprocess.run(
            [BASTION, "create-user", "--email", email, "--password-stdin"],
            env=self.environment,
            input=f"{STRONG_PASSWORD}\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def deployment(
    postgresql_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    environment.update(
        BASTION_DATABASE_URL=postgresql_url,
        # The in-process tests' secret: it seals the signing keys they stored in this database.
        BASTION_SECRET_KEY=str(make_settings(postgresql_url, "smtp://127.0.0.1:25").secret_key),
        BASTION_PUBLIC_URL=PUBLIC_URL,
        BASTION_COOKIE_SECURE="false",
        BASTION_AUTO_MIGRATE="false",
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
    )
    logs = tmp_path_factory.mktemp("two-processes")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        bases = [_start(environment, logs / f"{name}.log", processes) for name in "ab"]
        for base, name in zip(bases, "ab", strict=True):
            _wait_until_ready(base, logs / f"{name}.log")
        yield Deployment(environment, *bases)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(environment: dict[str, str], log: Path, processes: list[subprocess.Popen[bytes]]) -> str:
    port = free_port()
    with log.open("wb") as output:
        processes.append(
            subprocess.Popen(
                [BASTION, "serve", "--port", str(port), "--workers", "1"],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        )
    return f"http://127.0.0.1:{port}"


def _wait_until_ready(base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/.well-known/jwks.json").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not start:\n{log.read_text()}")


def _login(base: str, email: str, *, remember_me: bool = False) -> httpx.Response:
    response = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"email": email, "password": STRONG_PASSWORD, "remember_me": remember_me},
    )
    assert response.status_code == 200, response.text
    return response


def test_a_logout_on_one_process_is_seen_by_the_other_within_a_second(
    deployment: Deployment,
) -> None:
    email = random_email("cluster")
    deployment.create_user(email)
    access = _login(deployment.a, email).json()["access_token"]
    verify_on_b = f"{deployment.b}/api/v1/auth/verify-token"
    # B now holds the session as live in its cache.
    assert httpx.get(verify_on_b, headers=bearer(access)).status_code == 200

    logout = httpx.post(f"{deployment.a}/api/v1/auth/logout", headers=bearer(access))
    assert logout.status_code == 204

    deadline = time.monotonic() + REVOCATION_DEADLINE_SECONDS
    seen = httpx.get(verify_on_b, headers=bearer(access))
    while seen.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = httpx.get(verify_on_b, headers=bearer(access))
    assert seen.status_code == 401, "process B still accepted the token a second after logout"
    assert seen.json()["code"] == "SESSION_REVOKED"


async def test_one_refresh_token_raced_across_both_processes_is_spent_once(
    deployment: Deployment,
) -> None:
    email = random_email("cluster-race")
    deployment.create_user(email)
    token = refresh_token_in(_login(deployment.a, email, remember_me=True))

    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{base}/api/v1/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
                )
                for base in [deployment.a, deployment.b] * 10
            )
        )

    assert sorted(r.status_code for r in responses) == [200] + [401] * 19
