"""Users, tokens and refresh cookies the phases need, created before any phase is timed."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp

from bench.config import MAIN_VENV, PASSWORD
from bench.webauthn_authenticator import SoftwareAuthenticator, export_credential

LOGIN = "/api/v1/auth/login"
REFRESH_COOKIE = "bastion_refresh"
# `bastion create-user` is a whole interpreter start plus one hash; more at once only queues.
SEED_PARALLELISM = 4
MFA = "/api/v1/auth/mfa"
# Enrolments through the API, each a login (one hash) and two light requests.
ENROL_PARALLELISM = 8


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


@dataclass(frozen=True)
class TotpUser:
    email: str
    secret: str
    # The time step of the code that confirmed the factor: spent, so not a login code.
    spent_step: int


def enrol_totp(base_url: str, emails: Sequence[str]) -> list[TotpUser]:
    """Give each user an authenticator app the way a person does: log in, POST /mfa/totp,
    confirm with a code from pyotp."""

    def one(email: str) -> TotpUser:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {bastion_login(client, email).access_token}"}
            started = client.post(f"{MFA}/totp", json={"name": "Bench"}, headers=headers)
            started.raise_for_status()
            enrolment = started.json()
            totp = pyotp.TOTP(enrolment["secret"])
            confirm = f"{MFA}/totp/{enrolment['factor_id']}/confirm"
            # The previous step's code (accepted as a step of clock drift) spends that step, so
            # the user may log in within the current one; on a step boundary it may be refused
            # as too old, and the current code confirms instead.
            for behind in (1, 0):
                step = totp.timecode(datetime.now(UTC)) - behind
                confirmed = client.post(
                    confirm, json={"code": totp.generate_otp(step)}, headers=headers
                )
                if confirmed.status_code == httpx.codes.OK:
                    break
            confirmed.raise_for_status()
            return TotpUser(email, enrolment["secret"], step)

    with ThreadPoolExecutor(ENROL_PARALLELISM) as pool:
        return list(pool.map(one, emails))


def enrol_passkeys(base_url: str, emails: Sequence[str]) -> list[dict[str, object]]:
    """Register a passkey (synced: its counter stays 0, so any connection may sign with it at
    any time) for each user through the API; the credentials exported, private keys included."""
    origin = base_url  # PUBLIC_URL, so the relying party's own origin

    def one(email: str) -> dict[str, object]:
        authenticator = SoftwareAuthenticator(synced=True)
        with httpx.Client(base_url=base_url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {bastion_login(client, email).access_token}"}
            options = client.post(
                f"{MFA}/webauthn/options", json={"passkey": True}, headers=headers
            )
            options.raise_for_status()
            credential = authenticator.create(options.json(), origin)
            registered = client.post(
                f"{MFA}/webauthn",
                json={"name": "Bench passkey", "credential": credential},
                headers=headers,
            )
            registered.raise_for_status()
        [stored] = authenticator.credentials.values()
        return export_credential(stored)

    with ThreadPoolExecutor(ENROL_PARALLELISM) as pool:
        return list(pool.map(one, emails))
