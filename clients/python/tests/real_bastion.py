"""A real ``bastion serve`` in a subprocess, used as a user and an operator use it."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from fake_bastion import free_port

BASTION = str(Path(sys.executable).with_name("bastion"))
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "Correct-Horse-7"
AUDIENCE = "bastion"


@dataclass(frozen=True)
class Session:
    token: str
    sid: str


class RealBastion:
    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url  # BASTION_ISSUER defaults to the public URL
        self.audience = AUDIENCE
        self.log = workdir / "serve.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        self.env.update(
            BASTION_DATABASE_URL=database_url,
            BASTION_SECRET_KEY=f"verifier-tests-{secrets.token_hex(16)}",
            BASTION_PUBLIC_URL=self.url,
            BASTION_ARGON2_TIME_COST="1",
            BASTION_ARGON2_MEMORY_COST="1024",
            BASTION_OUTBOX_POLL_SECONDS="0.1",
            BASTION_REGISTER_PER_HOUR="100000",
            BASTION_RATE_LIMIT_PER_MINUTE="100000",
            BASTION_USER_RATE_LIMIT_PER_MINUTE="100000",
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as output:
            self._process = subprocess.Popen(
                [BASTION, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/.well-known/jwks.json").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"bastion serve did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def rotate_keys(self) -> str:
        """``bastion keys rotate``, then a restart so that this instance signs with the new key
        at once (a running one switches within seconds)."""
        result = subprocess.run(
            [BASTION, "keys", "rotate"], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        found = re.search(r"New signing key (\w+)", result.stdout)
        assert found, result.stdout
        self.stop()
        # The schema is already at head: skip the migration step on the way back up.
        self.env["BASTION_AUTO_MIGRATE"] = "false"
        self.start()
        return found.group(1)

    def restart(self) -> None:
        """Stop and start again on the same port, as an upgrade or a crash-restart does."""
        self.stop()
        self.env["BASTION_AUTO_MIGRATE"] = "false"
        self.start()

    def service_key(self) -> str:
        """``bastion service-keys create``'s key for the event stream (its output's last line)."""
        result = subprocess.run(
            [BASTION, "service-keys", "create", "verifier-tests", "--scope", "events:read"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def new_user(self) -> str:
        """A user who signed up and clicked the link in the (console) email: their address."""
        address = f"verifier-{uuid.uuid4().hex[:12]}@example.com"
        response = httpx.post(
            f"{self.url}/api/v1/auth/register", json={"email": address, "password": PASSWORD}
        )
        assert response.status_code == 202, response.text
        link = re.compile(rf"To: {re.escape(address)}\n.*?verify-email\?token=([\w-]+)", re.S)
        deadline = time.monotonic() + 10
        while (found := link.search(self.log.read_text())) is None:
            assert time.monotonic() < deadline, "no verification email was printed"
            time.sleep(0.05)
        verified = httpx.post(f"{self.url}/api/v1/auth/verify-email/{found.group(1)}")
        assert verified.status_code == 200, verified.text
        return address

    def log_in(self, address: str) -> Session:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"email": address, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return Session(body["access_token"], body["session_id"])

    def log_out(self, token: str) -> None:
        response = httpx.post(
            f"{self.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 204, response.text

    def jwks(self) -> dict[str, object]:
        document: dict[str, object] = httpx.get(f"{self.url}/.well-known/jwks.json").json()
        return document


def psql(command: str) -> None:
    result = subprocess.run(
        ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(
            "PostgreSQL is required for these tests (127.0.0.1:5432, user postgres, trust auth) "
            f"and {command!r} failed: {result.stderr.strip()}"
        )
