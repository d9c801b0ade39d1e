from __future__ import annotations

import httpx
import jwt
import pytest

from tests.support import SmtpServer, access_token, bearer


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


async def test_verify_token_returns_the_claims_a_resource_server_needs(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    token = await access_token(client, smtp.mailbox)
    body = (await client.get("/api/v1/auth/verify-token", headers=bearer(token))).json()
    assert set(body) == {"sub", "email", "role", "sid", "exp"}
    assert body["role"] == "user"


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
