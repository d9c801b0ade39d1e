"""What a client meets at the edge of the real server: oversized and stalled bodies."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.serving import ServedBastion, served_for_backend

REGISTER = "/api/v1/auth/register"
ROUNDS = 50
BODY_READ_TIMEOUT = 1.0


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBastion]:
    timeout = str(BODY_READ_TIMEOUT)
    with served_for_backend(request, tmp_path_factory, body_read_timeout=timeout) as served:
        yield served


def oversized_body() -> dict[str, str]:
    return {"email": "someone@example.com", "password": "A1a" + "x" * 70_000}


def test_a_413_closes_the_keep_alive_connection_cleanly_every_time(
    server: ServedBastion,
) -> None:
    answered = 0
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(ROUNDS):
            refused = client.post(REGISTER, json=oversized_body())
            assert refused.status_code == 413
            assert refused.headers["connection"] == "close"
            assert refused.json()["code"] == "PAYLOAD_TOO_LARGE"
            answered += client.get("/healthz").status_code == 200
    assert answered == ROUNDS


def test_a_body_of_the_wrong_type_is_refused_and_the_connection_stays_usable(
    server: ServedBastion,
) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(ROUNDS):
            refused = client.post(REGISTER, data={"email": "x" * 60_000})
            assert refused.status_code == 415
            assert refused.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
            assert client.get("/healthz").status_code == 200


def test_a_streamed_body_over_the_limit_is_refused_and_the_client_reads_it(
    server: ServedBastion,
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    with httpx.Client(base_url=server.base_url) as client:
        for _ in range(10):
            refused = client.post(
                REGISTER, content=chunks(), headers={"content-type": "application/json"}
            )
            assert refused.status_code == 413
            assert refused.headers["connection"] == "close"
            assert client.get("/healthz").status_code == 200


def test_a_stalled_body_is_answered_408_and_the_connection_closes(server: ServedBastion) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bastion\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"ema'
        )
        started = time.monotonic()
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        waited = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert b'"code":"REQUEST_TIMEOUT"' in body
    assert BODY_READ_TIMEOUT * 0.9 <= waited < BODY_READ_TIMEOUT + 5
