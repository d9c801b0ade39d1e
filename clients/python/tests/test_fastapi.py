"""The FastAPI integration over HTTP: install(app), Depends(verifier.require(…)), problems."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from asgi_server import serving
from bastion_verifier import Claims, Verifier
from clock import Clock
from fake_bastion import REVOCATION_SECONDS, FakeBastion

PROBLEM_JSON = "application/problem+json"


def task_service(verifier: Verifier) -> FastAPI:
    app = FastAPI()
    verifier.install(app)
    # Annotations are strings here (PEP 563) and FastAPI reads them in the module's namespace,
    # where this function's verifier is not: the dependencies go in the defaults instead.
    anyone = verifier.require()
    admin_stepped_up = verifier.require(role="admin", aal="aal2", max_age=300)
    staff = verifier.require(role=["admin", "staff"])

    @app.get("/tasks")
    async def tasks(claims: Claims = Depends(anyone)) -> dict[str, str]:
        return {"sub": claims.sub, "role": claims.role, "aal": claims.aal}

    @app.delete("/tasks")
    async def delete_all(claims: Claims = Depends(admin_stepped_up)) -> dict[str, str]:
        return {"deleted_by": claims.sub}

    @app.get("/reports")
    def reports(claims: Claims = Depends(staff)) -> dict[str, str]:
        return {"role": claims.role}

    return app


@pytest.fixture
async def service(fake: FakeBastion, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    verifier = Verifier(issuer=fake.issuer, audience=fake.audience, clock=clock)
    async with serving(task_service(verifier)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert set(body) == {"type", "title", "status", "detail", "code"}
    return body


async def test_the_endpoint_gets_the_claims_of_a_valid_token(
    fake: FakeBastion, service: httpx.AsyncClient
) -> None:
    issued = fake.log_in()
    response = await service.get("/tasks", headers=bearer(issued.token))
    assert response.status_code == 200
    assert response.json() == {"sub": issued.sub, "role": "user", "aal": "aal1"}


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw=="])
async def test_a_request_without_a_bearer_token_gets_a_bare_challenge(
    service: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await service.get("/tasks", headers=headers)
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_bad_or_expired_token_is_401_invalid_token(
    fake: FakeBastion, service: httpx.AsyncClient
) -> None:
    now = int(time.time())
    expired = fake.log_in(iat=now - 700, exp=now - 100).token
    response = await service.get("/tasks", headers=bearer(expired))
    assert_problem(response, 401, "TOKEN_EXPIRED")
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    response = await service.get("/tasks", headers=bearer(fake.log_in(aud="billing").token))
    assert_problem(response, 401, "INVALID_TOKEN")
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token is invalid."'
    )


@pytest.mark.parametrize(
    "header",
    [
        b"Bearer " + b"A" * 20_000,
        "Bearer jéton.ünï.cødé".encode(),
        b"Bearer a b c",
        b"Bearer \xff\xfe\xfd",
        b"bearer " + b"9" * 400 + b".e30.",
    ],
)
async def test_hostile_headers_are_refused_as_problems_never_as_errors(
    service: httpx.AsyncClient, header: bytes
) -> None:
    response = await service.get("/tasks", headers=[(b"Authorization", header)])
    assert_problem(response, 401, "INVALID_TOKEN")


async def test_a_wrong_role_is_403_without_a_challenge(
    fake: FakeBastion, service: httpx.AsyncClient
) -> None:
    token = fake.log_in(role="user", aal="aal2").token
    response = await service.delete("/tasks", headers=bearer(token))
    assert_problem(response, 403, "FORBIDDEN")
    assert "www-authenticate" not in response.headers
    staff = fake.log_in(role="staff").token
    assert (await service.get("/reports", headers=bearer(staff))).json() == {"role": "staff"}


async def test_a_weak_or_old_authentication_asks_for_a_step_up_per_rfc_9470(
    fake: FakeBastion, service: httpx.AsyncClient
) -> None:
    now = int(time.time())
    challenge = (
        'Bearer error="insufficient_user_authentication", error_description="This request '
        'needs {needs}.", acr_values="aal2", max_age="300"'
    )
    weak = fake.log_in(role="admin", aal="aal1", auth_time=now).token
    response = await service.delete("/tasks", headers=bearer(weak))
    assert_problem(response, 401, "INSUFFICIENT_USER_AUTHENTICATION")
    assert response.headers["www-authenticate"] == challenge.format(
        needs="an authentication at aal2 or higher"
    )
    old = fake.log_in(role="admin", aal="aal2", auth_time=now - 400, iat=now - 10).token
    response = await service.delete("/tasks", headers=bearer(old))
    assert_problem(response, 401, "INSUFFICIENT_USER_AUTHENTICATION")
    assert response.headers["www-authenticate"] == challenge.format(
        needs="an authentication within the last 300 seconds"
    )
    fresh = fake.log_in(role="admin", aal="aal2", auth_time=now - 10)
    response = await service.delete("/tasks", headers=bearer(fresh.token))
    assert response.json() == {"deleted_by": fresh.sub}


async def test_an_unreachable_bastion_is_503_with_retry_after(
    fake: FakeBastion, service: httpx.AsyncClient
) -> None:
    token = fake.log_in().token
    fake.stop()
    response = await service.get("/tasks", headers=bearer(token))
    assert_problem(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["retry-after"] == "5"
    fake.start()


async def test_the_openapi_schema_documents_the_bearer_scheme(service: httpx.AsyncClient) -> None:
    schema = (await service.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BastionAccessToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from Bastion's log-in or refresh.",
    }
    assert schema["paths"]["/tasks"]["get"]["security"] == [{"BastionAccessToken": []}]


async def test_install_starts_and_stops_the_event_stream_with_the_app(
    fake: FakeBastion, clock: Clock
) -> None:
    verifier = Verifier(
        issuer=fake.issuer,
        audience=fake.audience,
        revocation="events",
        service_key=fake.service_key,
        clock=clock,
    )
    issued = fake.log_in()
    async with serving(task_service(verifier)) as client:
        await fake.wait_for_streams(1)
        assert (await client.get("/tasks", headers=bearer(issued.token))).status_code == 200
        fake.log_out(issued)
        deadline = time.monotonic() + REVOCATION_SECONDS
        while (response := await client.get("/tasks", headers=bearer(issued.token))).is_success:
            assert time.monotonic() < deadline
        assert_problem(response, 401, "TOKEN_REVOKED")
    await fake.wait_for_streams(0)
