"""Liveness, readiness and metrics, as a load balancer and Prometheus see them."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.mail.model import EmailMessage
from tests.support import (
    SmtpServer,
    free_port,
    login,
    make_settings,
    random_email,
    refresh,
    refresh_token_in,
    remembered_login,
    running_app,
)

POSTGRES_PORT = 5432


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when the series does not exist)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_healthz_answers_while_the_process_runs(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_database_redis_and_the_outbox_backlog(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["redis"] == "not configured"
    assert isinstance(body["outbox_backlog"], int) and body["outbox_backlog"] >= 0


async def test_metrics_count_a_failed_login_by_reason_and_route(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/metrics")).text
    assert (await login(client, random_email("nobody"), "Wrong-Horse-7")).status_code == 401
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    failures = "bastion_login_failures_total"
    assert metric(after, failures, reason="unknown_email") == (
        metric(before, failures, reason="unknown_email") + 1
    )
    requests = "bastion_http_requests_total"
    labels = {"method": "POST", "route": "/api/v1/auth/login", "status": "401"}
    assert metric(after, requests, **labels) == metric(before, requests, **labels) + 1
    duration = "bastion_http_request_duration_seconds_count"
    assert metric(after, duration, **labels) == metric(before, duration, **labels) + 1
    # The unknown email was still "verified" against a dummy hash, and that was timed.
    assert metric(after, "bastion_password_hash_seconds_count") >= 1
    assert "bastion_outbox_backlog" in after


async def test_metrics_count_made_up_methods_as_one_series(client: httpx.AsyncClient) -> None:
    for method in ("BREW", "WHEN", "PROPFIND"):
        assert (await client.request(method, "/healthz")).status_code == 405
    text = (await client.get("/metrics")).text

    requests = "bastion_http_requests_total"
    labels = {"route": "/healthz", "status": "405"}
    assert metric(text, requests, method="OTHER", **labels) == 3
    assert metric(text, requests, method="BREW", **labels) == 0


async def test_metrics_count_successful_logins_and_delivered_emails(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    before = (await client.get("/metrics")).text
    email = random_email("metrics")
    await services.accounts.create_user(email, "Correct-Horse-7", Role.USER)
    assert (await login(client, email)).status_code == 200
    await client.post("/api/v1/auth/forgot-password", json={"email": email})
    await smtp.mailbox.wait_for(email)
    after = await _wait_for_metric(client, "bastion_emails_sent_total", before)
    assert metric(after, "bastion_login_successes_total") == (
        metric(before, "bastion_login_successes_total") + 1
    )


async def _wait_for_metric(client: httpx.AsyncClient, name: str, before: str, **labels: str) -> str:
    """The exposition once ``name`` grew: the worker counts a delivery just after sending it."""
    for _ in range(250):
        text = (await client.get("/metrics")).text
        if sum(_samples(text, name, labels)) > sum(_samples(before, name, labels)):
            return text
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} {labels} did not grow")


def _samples(text: str, name: str, labels: dict[str, str]) -> list[float]:
    return [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


class TcpProxy:
    """A TCP relay to PostgreSQL that the test can cut and restore, like a network outage."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Stop accepting and drop every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)


async def test_readyz_is_503_while_postgresql_is_unreachable_and_recovers_without_restart(
    postgresql_url: str, smtp: SmtpServer
) -> None:
    proxy = TcpProxy(POSTGRES_PORT)
    await proxy.open()
    through_proxy = postgresql_url.replace(":5432/", f":{proxy.port}/")
    try:
        async with running_app(make_settings(through_proxy, smtp.url)) as (client, _):
            assert (await client.get("/readyz")).status_code == 200

            await proxy.cut()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["database"] == "unavailable"
            assert (await client.get("/healthz")).status_code == 200
            refused = await login(client, random_email(), "Wrong-Horse-7")
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
            assert (await client.get("/metrics")).status_code == 200

            await proxy.open()
            back = await client.get("/readyz")
            assert back.status_code == 200 and back.json()["database"] == "ok"
            assert (await login(client, random_email(), "Wrong-Horse-7")).status_code == 401
    finally:
        await proxy.cut()


async def test_metrics_count_a_lockout(database_url: str, smtp: SmtpServer) -> None:
    settings = make_settings(database_url, smtp.url, login_max_failures=2)
    async with running_app(settings, client_ip="198.51.100.23") as (client, _):
        for _ in range(3):
            await login(client, random_email("locked"), "Wrong-Horse-7")
        text = (await client.get("/metrics")).text
    assert metric(text, "bastion_lockouts_total", scope="ip") == 1
    assert metric(text, "bastion_login_failures_total", reason="blocked") >= 1


async def test_metrics_count_a_refresh_token_reuse(app: tuple[httpx.AsyncClient, Services]) -> None:
    client, services = app
    email = random_email("reuse")
    await services.accounts.create_user(email, "Correct-Horse-7", Role.USER)
    _, refresh_token = await remembered_login(client, email)
    rotated = await refresh(client, refresh_token)
    assert (await refresh(client, refresh_token_in(rotated))).status_code == 200
    assert (await refresh(client, refresh_token)).json()["code"] == "REFRESH_TOKEN_REUSED"
    text = (await client.get("/metrics")).text
    assert metric(text, "bastion_refresh_token_reuse_detected_total") == 1


class UnreachableSmtp:
    """A mail transport whose server refuses every connection."""

    async def send(self, message: EmailMessage, sender: str) -> None:
        raise ConnectionRefusedError("smtp down")


async def test_metrics_count_failed_deliveries_by_kind(database_url: str, smtp: SmtpServer) -> None:
    settings = make_settings(database_url, smtp.url)
    async with running_app(settings, mail_transport=UnreachableSmtp()) as (client, services):
        email = random_email("undeliverable")
        await services.accounts.create_user(email, "Correct-Horse-7", Role.USER)
        await client.post("/api/v1/auth/forgot-password", json={"email": email})
        # Messages left queued by earlier tests may fail first: wait for this one's kind.
        text = await _wait_for_metric(
            client, "bastion_emails_failed_total", "", kind="reset_password"
        )
    assert metric(text, "bastion_emails_failed_total", kind="reset_password") >= 1
    assert metric(text, "bastion_outbox_backlog") >= 1
