"""Users, tokens and refresh cookies the phases need, created before any phase is timed."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.config import MAIN_VENV, PASSWORD

LOGIN = "/api/v1/auth/login"
REFRESH_COOKIE = "bastion_refresh"
# `bastion create-user` is a whole interpreter start plus one hash; more at once only queues.
SEED_PARALLELISM = 4


def seed_bastion_users(
    emails: Sequence[str], env: Mapping[str, str], cwd: Path, role: str = "user"
) -> None:
    """Create verified users through the CLI, the supported way to make users without email."""

    def create(email: str) -> None:
        _bastion(["create-user", "--email", email, "--role", role], env, cwd, timeout=60)

    with ThreadPoolExecutor(SEED_PARALLELISM) as pool:
        list(pool.map(create, emails))


def seed_in_bulk(
    email_format: str, count: int, start: int, env: Mapping[str, str], cwd: Path
) -> None:
    """`bastion seed-users`: verified users sharing one hash, COPY'd in (a million in a minute)."""
    arguments = ["seed-users", "--count", str(count), "--start", str(start)]
    _bastion([*arguments, "--email-format", email_format], env, cwd, timeout=1800)


def _bastion(arguments: list[str], env: Mapping[str, str], cwd: Path, timeout: float) -> None:
    result = subprocess.run(
        [str(MAIN_VENV / "bin" / "bastion"), *arguments, "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bastion {' '.join(arguments)} failed: {result.stderr.decode()}")


def register_bastion_users(base_url: str, emails: Sequence[str]) -> None:
    """Sign up through the API: accounts that stay unverified, for the resend phases."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for email in emails:
            response = client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            response.raise_for_status()


@dataclass(frozen=True)
class Login:
    access_token: str
    refresh_cookie: str | None


def bastion_login(client: httpx.Client, email: str, *, remember_me: bool = False) -> Login:
    response = client.post(
        LOGIN, json={"email": email, "password": PASSWORD, "remember_me": remember_me}
    )
    response.raise_for_status()
    return Login(response.json()["access_token"], response.cookies.get(REFRESH_COOKIE))


def bastion_logins(
    base_url: str, emails: Sequence[str], count: int, *, remember_me: bool = False
) -> list[Login]:
    """`count` logins spread over `emails`, each its own session (and cookie chain)."""

    # A fresh client per login, so no cookie jar carries one session's cookie into the next.
    def one(index: int) -> Login:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            return bastion_login(client, emails[index % len(emails)], remember_me=remember_me)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def seed_peer_users(base_url: str, emails: Sequence[str]) -> None:
    """FastAPI-Users accounts are active at sign-up and may log in unverified, so register them."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for email in emails:
            response = client.post("/auth/register", json={"email": email, "password": PASSWORD})
            response.raise_for_status()


def peer_tokens(base_url: str, emails: Sequence[str], count: int) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return [_peer_token(client, emails[index % len(emails)]) for index in range(count)]


def _peer_token(client: httpx.Client, email: str) -> str:
    response = client.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token
