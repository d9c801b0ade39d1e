from __future__ import annotations

import httpx

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


async def test_the_interactive_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()
