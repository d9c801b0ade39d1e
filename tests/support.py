"""Test helpers shared by every tier: real databases, a real SMTP server, the real app."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import functools
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from bastion.adapters.sql import tables
from bastion.app import create_app
from bastion.audit.model import AuditEvent
from bastion.bootstrap import Services, build
from bastion.core.clock import FrozenClock
from bastion.migrate import upgrade
from bastion.settings import Settings

REPO = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PUBLIC_URL = "https://bastion.test"
CLIENT_IP = "203.0.113.10"
# How long a test waits for an email it expects. Mail goes out within a second; on two cores
# shared with the rest of the suite, an email was once still not there after ten.
MAIL_WAIT_SECONDS = 30.0
# How long a count waits, after the emails it expects came, for one too many.
QUIET_SECONDS = 0.5
STRONG_PASSWORD = "Correct-Horse-7"


def random_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


FULL_WIDTH_OFFSET = ord("ａ") - ord("a")


def look_alike(email: str) -> str:
    """``email`` spelt another way: full-width letters and digits in the part before the @,
    a dotted capital İ for every i, and a full-width first letter in the domain."""
    local, _, domain = email.partition("@")
    spelt = "".join(
        "İ" if c == "i" else chr(ord(c) + FULL_WIDTH_OFFSET) if c.isalnum() else c for c in local
    )
    return f"{spelt}@{chr(ord(domain[0]) + FULL_WIDTH_OFFSET)}{domain[1:]}"


# Ports for the servers tests start come from below the kernel's ephemeral range (32768 and up
# here), so an outgoing connection never takes one between its choice and the server's bind; and
# from a band of each pytest-xdist worker's own, so two workers never choose the same.
PORT_BAND_START, PORT_BAND_SIZE = 20_000, 1_500


@functools.cache
def _worker_ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = PORT_BAND_START + PORT_BAND_SIZE * (int(worker) % 8 if worker.isdigit() else 0)
    offset = secrets.randbelow(PORT_BAND_SIZE)  # another run on the machine starts elsewhere
    return itertools.cycle([start + (offset + n) % PORT_BAND_SIZE for n in range(PORT_BAND_SIZE)])


def free_port() -> int:
    """A port nothing listens on now, from this worker's band."""
    ports = _worker_ports()
    for _ in range(PORT_BAND_SIZE):
        port = next(ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this worker's band")


def psql(*commands: str) -> None:
    """Run administrative SQL against the local PostgreSQL, failing loudly if it is not there."""
    for command in commands:
        result = subprocess.run(
            ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(
                "PostgreSQL is required for the test suite (127.0.0.1:5432, user postgres, trust "
                f"auth) and the command {command!r} failed: {result.stderr.strip()}"
            )


def create_postgres_database() -> tuple[str, str]:
    name = f"bastion_test_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {name}")
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(name: str) -> None:
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Mailbox:
    """Messages received by the in-process SMTP server."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, to: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if to.lower() in str(m["To"]).lower()]

    async def wait_for(
        self, to: str, subject: str = "", timeout: float = MAIL_WAIT_SECONDS
    ) -> EmailMessage:
        """The latest email to ``to`` whose subject holds ``subject``, once one came."""
        found = await self.wait_for_all(to, subject, 1, timeout)
        if not found:
            raise AssertionError(f"no email to {to} with subject containing {subject!r} arrived")
        return found[-1]

    async def wait_for_all(
        self, to: str, subject: str, count: int, timeout: float = MAIL_WAIT_SECONDS
    ) -> list[EmailMessage]:
        """Every email to ``to`` whose subject holds ``subject``, once at least ``count`` came
        (fewer if the timeout passed first)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(to, subject)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.02)

    async def settled(
        self, to: str, subject: str = "", expected: int = 0, quiet: float = QUIET_SECONDS
    ) -> list[EmailMessage]:
        """Every email to ``to`` whose subject holds ``subject``, once ``expected`` of them came
        (or the wait timed out) and ``quiet`` more seconds brought no other: for counting, where
        an email too many is as wrong as one missing. (A fixed pause before counting would
        miss an email that a stalled CPU delayed.)"""
        await self.wait_for_all(to, subject, expected)
        await asyncio.sleep(quiet)
        return self.matching(to, subject)

    def matching(self, to: str, subject: str) -> list[EmailMessage]:
        return [m for m in self.received(to) if subject.lower() in str(m["Subject"]).lower()]


class _CollectingHandler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.mailbox.lock:
            self.mailbox.messages.append(message)
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self._controller = Controller(
            _CollectingHandler(self.mailbox), hostname="127.0.0.1", port=self.port
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    match = re.search(rf"{re.escape(PUBLIC_URL + path)}\?token=[A-Za-z0-9_\-]+", text_of(message))
    assert match, f"no {path} link in the email"
    return match.group(0)


def token_in(message: EmailMessage, path: str) -> str:
    return link_in(message, path).split("token=", 1)[1]


def make_settings(database_url: str, smtp_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: real database and SMTP, Argon2 made cheap for speed."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_url": smtp_url,
        "public_url": PUBLIC_URL,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "argon2_time_cost": 1,
        "argon2_memory_cost": 1024,
        "outbox_poll_seconds": 0.1,
        "auto_migrate": False,
        # Tests of the admin API sign in with a password; the role policy (admins need a
        # second factor) is tested on its own (tests/api/test_admin_mfa_policy.py).
        "mfa_required_roles": [],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_app(
    settings: Settings, client_ip: str = CLIENT_IP, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The real app with its lifespan (signing key, outbox worker), reached through httpx."""
    services = build(settings, **overrides)
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
            yield client, services


async def register(client: httpx.AsyncClient, email_address: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/register", json={"email": email_address, "password": password}
    )


async def register_verified(
    client: httpx.AsyncClient, mailbox: Mailbox, email_address: str, password: str = STRONG_PASSWORD
) -> None:
    """Sign up and click the verification link, as a user would."""
    assert (await register(client, email_address, password)).status_code == 202
    message = await mailbox.wait_for(email_address, "confirm your email")
    token = token_in(message, "/verify-email")
    response = await client.post(f"/api/v1/auth/verify-email/{token}")
    assert response.status_code == 200, response.text


async def login(
    client: httpx.AsyncClient,
    email_address: str,
    password: str = STRONG_PASSWORD,
    *,
    remember_me: bool = False,
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        json={"email": email_address, "password": password, "remember_me": remember_me},
    )


async def access_token(
    client: httpx.AsyncClient, mailbox: Mailbox, email_address: str | None = None
) -> str:
    """A verified user's fresh access token."""
    email_address = email_address or random_email()
    await register_verified(client, mailbox, email_address)
    response = await login(client, email_address)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def kid_of(token: str) -> str:
    """The ``kid`` in an access token's header: which signing key signed it."""
    header = token.split(".", 1)[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


REFRESH_COOKIE = "bastion_refresh"


def refresh_cookie_header(response: httpx.Response) -> str:
    """The Set-Cookie header a response sends for the refresh token."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{REFRESH_COOKIE}="):
            return header
    raise AssertionError(f"no {REFRESH_COOKIE} cookie in {response.headers.get_list('set-cookie')}")


def refresh_token_in(response: httpx.Response) -> str:
    return refresh_cookie_header(response).split(";", 1)[0].removeprefix(f"{REFRESH_COOKIE}=")


async def remembered_login(
    client: httpx.AsyncClient, email_address: str, password: str = STRONG_PASSWORD
) -> tuple[str, str]:
    """Log in with remember_me: the access token and the refresh token from the cookie.

    The client's cookie jar is emptied so each test sends exactly the refresh token it means to.
    """
    response = await login(client, email_address, password, remember_me=True)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return response.json()["access_token"], refresh_token_in(response)


async def refresh(
    client: httpx.AsyncClient, refresh_token: str | None, **headers: str
) -> httpx.Response:
    """POST /refresh sending ``refresh_token`` (if any) as the cookie and nothing else."""
    if refresh_token is not None:
        headers["Cookie"] = f"{REFRESH_COOKIE}={refresh_token}"
    response = await client.post("/api/v1/auth/refresh", headers=headers)
    client.cookies.clear()
    return response


REDIS_URL = "redis://127.0.0.1:6379/0"


def ping_redis(url: str) -> None:
    """Fail loudly when Redis is not there: the tests that need it must not silently pass."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis is required for these tests ({url}) and did not answer: {exc}"
        ) from exc
    finally:
        client.close()


def delete_redis_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# The test client is the one trusted proxy, so each request picks its client IP in a header.
BEHIND_PROXY: dict[str, Any] = {"trusted_proxies": [f"{CLIENT_IP}/32"]}


@contextmanager
def migrated_postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database upgraded to head, dropped when the block ends."""
    name, url = create_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_postgres_database(name)


@contextmanager
def copied_postgres_database(template: str) -> Iterator[str]:
    """A fresh PostgreSQL database copied from the migrated database ``template`` (much faster
    than migrating one), dropped when the block ends."""
    name = f"bastion_test_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        drop_postgres_database(name)


def migrated_sqlite_database(directory: Path) -> str:
    """A SQLite database file in ``directory``, upgraded to head."""
    url = f"sqlite+aiosqlite:///{directory / 'bastion.db'}"
    upgrade(url)
    return url


async def verified_user(client: httpx.AsyncClient, mailbox: Mailbox, prefix: str = "user") -> str:
    """The address of a new user who signed up and confirmed their email."""
    email_address = random_email(prefix)
    await register_verified(client, mailbox, email_address)
    return email_address


@asynccontextmanager
async def app_with_user(
    database_url: str,
    smtp: SmtpServer,
    prefix: str,
    *,
    clock: FrozenClock | None = None,
    client_ip: str = CLIENT_IP,
    **settings: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, str]]:
    """The real app built from ``settings``, with one verified user whose address it yields."""
    overrides: dict[str, Any] = {} if clock is None else {"clock": clock}
    app_settings = make_settings(database_url, smtp.url, **settings)
    async with running_app(app_settings, client_ip, **overrides) as (client, services):
        yield client, services, await verified_user(client, smtp.mailbox, prefix)


async def audit_rows(services: Services, kind: str) -> list[dict[str, Any]]:
    """Every audit row of type ``kind`` in the database, oldest first."""
    a = tables.audit_events.c
    async with services.engine.connect() as connection:
        rows = await connection.execute(
            select(tables.audit_events).where(a.type == kind).order_by(a.id)
        )
        return [dict(row) for row in rows.mappings()]


async def user_id_of(services: Services, email_address: str) -> Any:
    async with services.engine.connect() as connection:
        query = select(tables.users.c.id).where(tables.users.c.email == email_address)
        return (await connection.execute(query)).scalar_one()


async def audit_events_of(services: Services, email_address: str, kind: str) -> list[AuditEvent]:
    """The audit events of type ``kind`` about the user with ``email_address``, newest first."""
    async with services.uow(read_only=True) as uow:
        user = await uow.users.get_by_email(email_address)
        assert user is not None
        return await uow.audit.list(user_id=user.id, type=kind)


async def verify_token(client: httpx.AsyncClient, access: str) -> httpx.Response:
    return await client.get("/api/v1/auth/verify-token", headers=bearer(access))


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    """The response is an error with this status and stable ``code``."""
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def forgot_password(client: httpx.AsyncClient, email_address: str) -> httpx.Response:
    return await client.post("/api/v1/auth/forgot-password", json={"email": email_address})


async def remembered_user(
    client: httpx.AsyncClient, mailbox: Mailbox, prefix: str = "user"
) -> tuple[str, str, str]:
    """A new verified user logged in with remember_me: the address, access and refresh tokens."""
    email_address = await verified_user(client, mailbox, prefix)
    access, refresh_token = await remembered_login(client, email_address)
    return email_address, access, refresh_token


class SpareRedis:
    """A Redis of this test's own, so it can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the spare redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def run_bounded(
    arguments: list[str], timeout: float, what: str
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository's root; past ``timeout``, SIGTERM it (so it stops its
    servers and drops its database before exiting) and fail the test with its last words."""
    process = subprocess.Popen(
        arguments, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"{what} did not finish in {timeout} s:\n{stderr[-4000:]}")
    except BaseException:
        # Interrupted (pytest-timeout, ^C): the command's servers would outlive the test and
        # keep working on the databases of the tests that come next.
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
