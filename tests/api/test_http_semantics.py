"""HTTP as clients expect it: no redirect to a caller-named host, HEAD, 405 with Allow,
and one problem per kind of refused body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import (
    SmtpServer,
    access_token,
    assert_problem,
    bearer,
    make_settings,
    running_app,
)

FOREIGN_HOST = {"Host": "evil.example"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/me/"),
        ("POST", "/api/v1/auth/login/"),
        ("GET", "/api/v1/auth/verify-token/"),
        ("GET", "/healthz/"),
    ],
)
async def test_a_trailing_slash_is_a_404_and_never_a_redirect_to_the_callers_host(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=FOREIGN_HOST, json={})
    assert_problem(response, 404, "NOT_FOUND")
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/admin/users/00000000-0000-4000-8000-000000000000", "GET, HEAD, PATCH, DELETE"),
        ("/api/v1/auth/login", "POST"),
        ("/api/v1/auth/me", "GET, HEAD, DELETE"),
        ("/api/v1/auth/verify-token", "GET, HEAD"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    response = await client.put(path, json={})
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    "path", ["/healthz", "/.well-known/jwks.json", "/api/v1/auth/me", "/api/v1/auth/verify-token"]
)
async def test_head_answers_as_get_without_a_body(
    client: httpx.AsyncClient, smtp: SmtpServer, path: str
) -> None:
    headers = bearer(await access_token(client, smtp.mailbox))
    got = await client.get(path, headers=headers)
    head = await client.head(path, headers=headers)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_on_a_post_only_path_is_a_405(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/v1/auth/login")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_both_kinds_of_oversized_body_get_the_same_problem(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"email": "' + b"x" * 70_000 + b'"}'

    async def streamed() -> AsyncIterator[bytes]:
        yield big

    declared = await client.post(
        "/api/v1/auth/register", content=big, headers={"content-type": "application/json"}
    )
    chunked = await client.post(
        "/api/v1/auth/register", content=streamed(), headers={"content-type": "application/json"}
    )
    for response in (declared, chunked):
        assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
        assert response.headers["connection"] == "close"
    assert declared.json() | {"detail": ""} == chunked.json() | {"detail": ""}


async def test_a_body_that_stalls_is_answered_408(database_url: str, smtp: SmtpServer) -> None:
    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"email": "'
        await asyncio.sleep(30)

    settings = make_settings(database_url, smtp.url, body_read_timeout=0.2)
    async with running_app(settings) as (client, _):
        response = await client.post(
            "/api/v1/auth/forgot-password",
            content=stalled(),
            headers={"content-type": "application/json"},
        )
    assert_problem(response, 408, "REQUEST_TIMEOUT")
    assert response.headers["connection"] == "close"


async def test_a_number_too_long_to_read_is_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"email": "a@example.com", "password": ' + b"1" * 5000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "MALFORMED_JSON")


async def test_a_body_nested_too_deep_to_read_is_malformed_json(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"[" * 30_000 + b"]" * 30_000,
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "MALFORMED_JSON")


async def test_an_invalid_content_length_is_a_400_that_closes(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "2x"},
    )
    assert_problem(response, 400, "BAD_REQUEST")
    assert response.headers["connection"] == "close"
