"""The command line as an operator uses it, on a fresh SQLite database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import STRONG_PASSWORD, free_port, random_email

BASTION = str(Path(sys.executable).with_name("bastion"))


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        BASTION_SECRET_KEY_FILE=str(tmp_path / "secret"),
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
    )
    return env


def bastion(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASTION, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_a_database_that_is_down_gives_one_error_and_the_databases_own_words_in_the_log(
    environment: dict[str, str],
) -> None:
    environment["BASTION_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"
    result = bastion(
        environment,
        "create-user",
        "--email",
        random_email("down"),
        "--password-stdin",
        stdin=f"{STRONG_PASSWORD}\n",
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "Error: The service is temporarily unavailable." in result.stderr
    assert "cli.database_unavailable" in result.stderr and "Connect call failed" in result.stderr
    assert STRONG_PASSWORD not in result.stderr


def test_create_user_reads_the_password_from_stdin_and_creates_a_verified_user(
    environment: dict[str, str],
) -> None:
    assert bastion(environment, "migrate").returncode == 0
    email = random_email("admin")
    result = bastion(
        environment,
        "create-user",
        "--email",
        email,
        "--role",
        "admin",
        "--password-stdin",
        stdin=f"{STRONG_PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr
    assert f"Created admin {email}" in result.stdout
    again = bastion(
        environment,
        "create-user",
        "--email",
        email.upper(),
        "--password-stdin",
        stdin=f"{STRONG_PASSWORD}\n",
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_create_user_stores_the_canonical_address_and_refuses_a_display_name(
    environment: dict[str, str],
) -> None:
    assert bastion(environment, "migrate").returncode == 0
    email = random_email("admin")
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in email.upper())
    created = bastion(
        environment, "create-user", "--email", full_width, "--password-stdin", stdin="Pass-Word-1\n"
    )
    assert created.returncode == 0, created.stderr
    assert f"Created user {email} " in created.stdout
    refused = bastion(
        environment,
        "create-user",
        "--email",
        f"Admin <{random_email()}>",
        "--password-stdin",
        stdin="Pass-Word-1\n",
    )
    assert refused.returncode == 1
    assert "not a valid email address" in refused.stderr


def test_create_user_refuses_a_weak_password(environment: dict[str, str]) -> None:
    bastion(environment, "migrate")
    result = bastion(
        environment,
        "create-user",
        "--email",
        random_email(),
        "--password-stdin",
        stdin="password\n",
    )
    assert result.returncode == 1
    assert "Password" in result.stderr


def test_keys_rotate_adds_a_signer_and_keeps_the_old_key_for_verification(
    environment: dict[str, str],
) -> None:
    bastion(environment, "migrate")
    first = bastion(environment, "keys", "list")
    assert first.returncode == 0 and first.stdout.count("signing") == 1
    rotated = bastion(environment, "keys", "rotate")
    assert rotated.returncode == 0
    new_kid = re.search(r"New signing key (\w+)", rotated.stdout)
    assert new_kid
    listing = bastion(environment, "keys", "list").stdout.splitlines()
    assert len(listing) == 2
    assert listing[0].startswith(new_kid.group(1)) and listing[0].endswith("signing")
    assert "verifies tokens until" in listing[1]


def test_production_refuses_a_missing_secret_listing_every_problem(
    environment: dict[str, str],
) -> None:
    environment.update(BASTION_ENV="production", BASTION_COOKIE_SECURE="false")
    result = bastion(environment, "migrate")
    assert result.returncode == 2
    assert "BASTION_SECRET_KEY" in result.stderr
    assert "BASTION_COOKIE_SECURE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def server(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [BASTION, "serve", "--port", str(port)],
            env={**environment, "BASTION_PUBLIC_URL": f"http://127.0.0.1:{port}"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/.well-known/jwks.json").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_migrates_a_fresh_database_and_prints_emails_to_the_console(
    server: tuple[str, Path],
) -> None:
    base, log = server
    assert httpx.get(f"{base}/docs").status_code == 200
    email = random_email("console")
    response = httpx.post(
        f"{base}/api/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and f"{base}/verify-email?token=" not in log.read_text():
        time.sleep(0.1)
    output = log.read_text()
    assert f"To: {email}" in output
    assert "Subject: Confirm your email address" in output
    token = re.search(r"verify-email\?token=([\w-]+)", output)
    assert token
    assert token.group(1) not in output.replace(f"verify-email?token={token.group(1)}", "")
