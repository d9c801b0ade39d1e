"""A real `bastion serve` (granian) in a process of its own, for what only the real server shows:
connection handling, timeouts, and pages loaded by a real browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, make_settings

BASTION = str(Path(sys.executable).with_name("bastion"))
# A start takes a few seconds on a quiet machine, and many times that while the suite's heaviest
# tests (the benchmark's smoke run, Schemathesis) load both cores.
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class ServedBastion:
    base_url: str
    port: int
    log: Path
    environment: dict[str, str]

    def create_user(self, email: str, password: str, role: str = "user") -> None:
        """A verified user, made by `bastion create-user` as an operator would."""
        create_user(self.environment, email, password, role)

    def access_token(self, email: str, password: str) -> str:
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def bastion_environment(database_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without its BASTION_* variables (nor a metrics directory: each
    server makes its own), plus settings for a test server: ``settings`` are field names
    (``body_read_timeout="2"``)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BASTION_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    environment.update(
        BASTION_DATABASE_URL=database_url,
        # The in-process tests' secret: it seals the signing keys they stored in the database.
        BASTION_SECRET_KEY=str(make_settings(database_url, "smtp://127.0.0.1:25").secret_key),
        BASTION_AUTO_MIGRATE="false",
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
        # As in make_settings: admins sign in with a password in these runs.
        BASTION_MFA_REQUIRED_ROLES="",
    )
    environment.update({f"BASTION_{name.upper()}": value for name, value in settings.items()})
    return environment


def create_user(environment: dict[str, str], email: str, password: str, role: str = "user") -> None:
    """A verified user, made by `bastion create-user` with ``environment``."""
    result = subprocess.run(
        [BASTION, "create-user", "--email", email, "--role", role, "--password-stdin"],
        env=environment,
        input=f"{password}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@contextmanager
def served_bastion(
    database_url: str, log: Path, *, host: str = "127.0.0.1", **settings: str
) -> Iterator[ServedBastion]:
    """`bastion serve` on a free port of 127.0.0.1 over a migrated database, once it answers;
    its output goes to ``log``. Its public URL is its own address, by ``host`` (``localhost``
    where WebAuthn or __Host- cookies need a secure context), unless ``settings`` name another.
    Stopped (SIGTERM, then SIGKILL) when the block ends."""
    port = free_port()
    base_url = f"http://{host}:{port}"
    environment = bastion_environment(database_url, **{"public_url": base_url, **settings})
    with log.open("wb") as output:
        process = subprocess.Popen(
            [BASTION, "serve", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(base_url, log, process)
        yield ServedBastion(base_url, port, log, environment)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def served_for_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[ServedBastion]:
    """For a fixture parametrized over the backends: `bastion serve` over the test run's
    database of that kind."""
    database_url: str = request.getfixturevalue(f"{request.param}_url")
    log = tmp_path_factory.mktemp(f"served-{request.param}") / "serve.log"
    with served_bastion(database_url, log, **settings) as server:
        yield server


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ready(base_url: str) -> bool:
    """Whether the server at ``base_url`` answers /readyz with 200."""
    try:
        return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _wait_until_ready(base_url: str, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"bastion serve did not start at {base_url}:\n{log.read_text()}")
