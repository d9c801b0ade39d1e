"""Bad input gets a clear problem document, never a 500, and never has its values echoed."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support import STRONG_PASSWORD, random_email

REGISTER = "/api/v1/auth/register"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status and body["code"] == code
    assert "Traceback" not in response.text


@pytest.mark.parametrize("raw", [b"{", b"[1, 2", b'{"email": }', b"\xff\xfe", b"null garbage"])
async def test_malformed_json_is_a_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        REGISTER, content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "MALFORMED_JSON")


async def test_a_non_json_content_type_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(REGISTER, data={"email": "a@example.com", "password": "x"})
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_body_over_64_kib_is_a_413(client: httpx.AsyncClient) -> None:
    big = {"email": random_email(), "password": "A1a" + "x" * 70_000}
    response = await client.post(REGISTER, json=big)
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_streamed_body_over_64_kib_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> object:
        for _ in range(80):
            yield b"x" * 1024

    response = await client.post(
        REGISTER,
        content=chunks(),
        headers={"content-type": "application/json"},  # type: ignore[arg-type]
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_unknown_fields_are_rejected_without_echoing_values(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        REGISTER,
        json={"email": random_email(), "password": STRONG_PASSWORD, "is_admin": "sekret-value"},
    )
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert response.json()["errors"][0]["loc"] == ["body", "is_admin"]
    assert "sekret-value" not in response.text
    assert STRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"email": ["a@example.com"], "password": STRONG_PASSWORD},
        {"email": "a@example.com", "password": 12345678},
        {"email": "a@example.com"},
        [],
        "just a string",
        {"email": {"$gt": ""}, "password": {"$gt": ""}},
    ],
)
async def test_wrong_shapes_are_validation_errors(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post(REGISTER, json=body)
    assert_problem(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "password", ["Ünïcødé-Pässwörd-1", "密码-Strong-Pass-9", "Emoji-🔐-Pass-1"]
)
async def test_unicode_passwords_are_accepted(client: httpx.AsyncClient, password: str) -> None:
    body = json.dumps({"email": random_email("unicode"), "password": password})
    response = await client.post(
        REGISTER, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text


async def test_a_lone_surrogate_is_a_validation_error(client: httpx.AsyncClient) -> None:
    body = json.dumps({"email": random_email(), "password": "Lone-\ud800-Surrogate-1"})
    response = await client.post(
        REGISTER, content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "VALIDATION_ERROR")


async def test_an_internationalized_email_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        REGISTER, json={"email": "üser-ß@exämple.com", "password": STRONG_PASSWORD}
    )
    assert response.status_code == 202


async def test_unknown_paths_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert_problem(await client.get(REGISTER), 405, "METHOD_NOT_ALLOWED")


async def test_a_bad_session_id_in_a_path_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.delete(
        "/api/v1/auth/sessions/not-a-uuid", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code in {401, 422}
    assert response.headers["content-type"] == "application/problem+json"
