from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import event
from structlog.testing import capture_logs

from tests.support import SmtpServer, access_token, app_with_user, bearer, login, verify_token


@pytest.mark.parametrize("path", ["/api/v1/auth/verify-token", "/api/v1/auth/me"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Bearer ünïcødé".encode()},
    ],
)
async def test_a_missing_or_malformed_token_is_invalid(
    client: httpx.AsyncClient, path: str, headers: dict[str, str | bytes]
) -> None:
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert response.headers["www-authenticate"].startswith("Bearer")


def nested_header_token(depth: int) -> str:
    """A token whose header is JSON nested ``depth`` deep: `[` × depth, then `]` × depth."""
    header = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode().rstrip("=")
    return f"{header}.e30.AA"


@pytest.mark.parametrize("path", ["/api/v1/auth/verify-token", "/api/v1/auth/me"])
async def test_a_deeply_nested_token_header_is_refused_quietly_as_invalid(
    client: httpx.AsyncClient, path: str
) -> None:
    with capture_logs() as logs:
        response = await client.get(path, headers=bearer(nested_header_token(1000)))
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert [entry["event"] for entry in logs] == ["request"]


async def test_verify_token_returns_the_claims_a_resource_server_needs(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    token = await access_token(client, smtp.mailbox)
    body = (await client.get("/api/v1/auth/verify-token", headers=bearer(token))).json()
    assert set(body) == {"sub", "email", "role", "sid", "exp", "aal", "amr", "auth_time"}
    assert body["role"] == "user"
    assert (body["aal"], body["amr"]) == ("aal1", ["pwd"])


async def test_the_jwks_publishes_the_ed25519_signing_key(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    token = await access_token(client, smtp.mailbox)
    kid = jwt.get_unverified_header(token)["kid"]
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    key = next(k for k in keys if k["kid"] == kid)
    assert {k: key[k] for k in ("kty", "crv", "use", "alg")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "alg": "EdDSA",
    }
    public_key = jwt.PyJWK(key).key
    claims = jwt.decode(token, public_key, algorithms=["EdDSA"], audience="bastion")
    assert claims["iss"] == "https://bastion.test"


async def test_sessions_in_use_are_confirmed_together_in_one_query(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "batch", session_cache_seconds=1.0) as (
        client,
        services,
        email,
    ):
        tokens = [(await login(client, email)).json()["access_token"] for _ in range(6)]
        session_queries: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if "FROM sessions" in statement:
                session_queries.append(statement)

        event.listen(services.engine.sync_engine, "before_cursor_execute", count)

        async def verify_all() -> int:
            before = len(session_queries)
            for token in tokens:
                assert (await verify_token(client, token)).status_code == 200
            return len(session_queries) - before

        assert await verify_all() == len(tokens)  # each confirmed on its own
        await asyncio.sleep(0.6)  # in use past half their trusted second
        assert await verify_all() == 0
        await asyncio.sleep(0.5)  # now lapsed: the first lookup confirms them all
        assert await verify_all() == 1
