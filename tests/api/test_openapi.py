from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bastion.passwords.policy import MAX_PASSWORD_LENGTH

EXPECTED_CODES = {
    ("/api/v1/auth/register", "post"): {"WEAK_PASSWORD", "VALIDATION_ERROR"},
    ("/api/v1/auth/verify-email/{token}", "post"): {"TOKEN_INVALID", "TOKEN_EXPIRED"},
    ("/api/v1/auth/login", "post"): {
        "INVALID_CREDENTIALS",
        "EMAIL_NOT_VERIFIED",
        "ACCOUNT_DISABLED",
    },
    ("/api/v1/auth/verify-token", "get"): {"INVALID_TOKEN", "TOKEN_EXPIRED", "SESSION_REVOKED"},
    ("/api/v1/auth/me", "get"): {"INVALID_TOKEN", "TOKEN_EXPIRED", "SESSION_REVOKED"},
}


async def test_openapi_documents_every_endpoint_and_its_error_codes(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    for (path, method), codes in EXPECTED_CODES.items():
        operation = schema["paths"][path][method]
        documented = " ".join(
            response["description"] for response in operation["responses"].values()
        )
        if "VALIDATION_ERROR" in codes:
            codes = codes - {"VALIDATION_ERROR"}
            assert "422" in operation["responses"]
        for code in codes:
            assert code in documented, f"{method.upper()} {path} does not document {code}"
    assert "/.well-known/jwks.json" in schema["paths"]
    assert "Problem" in schema["components"]["schemas"]


async def test_the_interactive_docs_are_served_from_bastion_alone(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(source.startswith("/docs/assets/") for source in sources)
    assert "<script>" not in response.text
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.content


async def test_only_the_docs_assets_are_served(client: httpx.AsyncClient) -> None:
    for name in ["redoc.standalone.js", "..%2F..%2Fpyproject.toml", "docs.py"]:
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_redoc_is_not_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def operations(client: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    schema = (await client.get("/openapi.json")).json()
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_operation_taking_input_documents_its_422_as_a_validation_problem(
    client: httpx.AsyncClient,
) -> None:
    checked = 0
    for path, method, operation in await operations(client):
        if not (operation.get("parameters") or "requestBody" in operation):
            continue
        refused = operation["responses"]["422"]
        assert list(refused["content"]) == ["application/problem+json"], (method, path)
        assert "`VALIDATION_ERROR`" in refused["description"], (method, path)
        checked += 1
    assert checked >= 10
    assert "HTTPValidationError" not in (await client.get("/openapi.json")).text


async def test_every_operation_with_a_body_documents_the_problems_of_reading_it(
    client: httpx.AsyncClient,
) -> None:
    for path, method, operation in await operations(client):
        if "requestBody" not in operation:
            continue
        responses = operation["responses"]
        assert "`MALFORMED_JSON`" in responses["400"]["description"], (method, path)
        for status, code in [("408", "REQUEST_TIMEOUT"), ("413", "PAYLOAD_TOO_LARGE")]:
            assert f"`{code}`" in responses[status]["description"], (method, path)


async def test_register_documents_both_of_its_422_codes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    description = schema["paths"]["/api/v1/auth/register"]["post"]["responses"]["422"]
    assert "`WEAK_PASSWORD`" in description["description"]
    assert "`VALIDATION_ERROR`" in description["description"]


async def test_passwords_are_documented_at_the_length_that_is_enforced(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    fields = [
        ("RegisterRequest", "password"),
        ("LoginRequest", "password"),
        ("ResetRequest", "new_password"),
        ("ChangeRequest", "current_password"),
        ("ChangeRequest", "new_password"),
    ]
    for model, field in fields:
        assert schemas[model]["properties"][field]["maxLength"] == MAX_PASSWORD_LENGTH == 256


async def test_operations_taking_an_access_token_declare_the_bearer_scheme(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    secured = {
        (path, method)
        for path, method, operation in await operations(client)
        if operation.get("security") == [{"bearerAuth": []}]
    }
    assert {
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/verify-token", "get"),
        ("/api/v1/auth/change-password", "post"),
        ("/api/v1/admin/users/{user_id}", "patch"),
        ("/api/v1/admin/audit-events", "get"),
    } <= secured
    for public in ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"]:
        assert (public, "post") not in secured
    assert ("/.well-known/jwks.json", "get") not in secured


async def test_every_request_string_is_documented_as_holding_no_nul(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemas = schema["components"]["schemas"]
    register = schemas["RegisterRequest"]["properties"]
    assert register["password"]["pattern"] == register["email"]["pattern"] == "^[^\\u0000]*$"
    assert re.search(register["password"]["pattern"], "Nul-\x00-Pass-1") is None
    users = schema["paths"]["/api/v1/admin/users"]["get"]["parameters"]
    email = next(parameter for parameter in users if parameter["name"] == "email")
    assert email["schema"]["anyOf"][0]["pattern"] == "^[^\\u0000]*$"


@pytest.mark.parametrize("address", ["ann@example.test", "ann@host.LOCAL", "ann@x.onion"])
async def test_email_domains_reserved_for_special_use_are_documented_and_refused(
    client: httpx.AsyncClient, address: str
) -> None:
    schema = (await client.get("/openapi.json")).json()
    refused = schema["components"]["schemas"]["EmailRequest"]["properties"]["email"]["not"]
    assert re.search(refused["pattern"], address)
    assert not re.search(refused["pattern"], "ann@example.com")
    response = await client.post("/api/v1/auth/forgot-password", json={"email": address})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
