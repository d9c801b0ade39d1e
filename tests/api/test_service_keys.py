"""Service keys over HTTP: admins issue them (the key shown once), list them without the secret
and revoke them; a key admits a service to what its scopes grant, and never acts as a user."""

from __future__ import annotations

import httpx
import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from tests.api.test_admin import Caller, make_user
from tests.support import assert_problem, bearer

KEYS = "/api/v1/admin/service-keys"


async def create_key(
    client: httpx.AsyncClient, admin: Caller, name: str = "billing", scopes: list[str] | None = None
) -> httpx.Response:
    body = {"name": name, "scopes": ["events:read"] if scopes is None else scopes}
    return await client.post(KEYS, json=body, headers=admin.headers)


async def test_an_admin_creates_a_key_shown_once_then_listed_without_it(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    created = await create_key(client, admin)
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("bsk_") and len(key) >= 4 + 43  # 256 bits, base64url
    assert body["name"] == "billing" and body["scopes"] == ["events:read"]
    assert body["revoked_at"] is None
    listed = await client.get(KEYS, headers=admin.headers)
    assert listed.status_code == 200
    mine = [item for item in listed.json()["items"] if item["id"] == body["id"]]
    assert mine and "key" not in mine[0] and key not in listed.text


async def test_a_revoked_key_no_longer_opens_the_event_stream(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    body = (await create_key(client, admin)).json()
    revoked = await client.delete(f"{KEYS}/{body['id']}", headers=admin.headers)
    assert revoked.status_code == 204
    again = await client.delete(f"{KEYS}/{body['id']}", headers=admin.headers)
    assert again.status_code == 204
    listed = (await client.get(KEYS, headers=admin.headers)).json()["items"]
    assert next(item for item in listed if item["id"] == body["id"])["revoked_at"] is not None
    trail = await client.get(
        "/api/v1/admin/audit-events", params={"user_id": admin.id}, headers=admin.headers
    )
    kinds = [item["type"] for item in trail.json()["items"]]
    assert "service_key_created" in kinds and "service_key_revoked" in kinds
    assert body["key"] not in trail.text
    # An unknown key id is 404.
    missing = await client.delete(
        f"{KEYS}/00000000-0000-4000-8000-000000000000", headers=admin.headers
    )
    assert_problem(missing, 404, "SERVICE_KEY_NOT_FOUND")
    stream = await client.get("/api/v1/events", headers=bearer(body["key"]))
    assert_problem(stream, 401, "INVALID_SERVICE_KEY")
    assert stream.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", [Role.MANAGER, Role.USER])
async def test_only_admins_manage_service_keys(
    app: tuple[httpx.AsyncClient, Services], role: Role
) -> None:
    client, services = app
    caller = await make_user(client, services, role)
    assert_problem(await create_key(client, caller), 403, "FORBIDDEN")
    assert_problem(await client.get(KEYS, headers=caller.headers), 403, "FORBIDDEN")
    assert_problem(await client.get(KEYS), 401, "INVALID_TOKEN")


async def test_a_service_key_is_not_a_users_credential(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    key = (await create_key(client, admin)).json()["key"]
    for path in ("/api/v1/auth/me", "/api/v1/auth/verify-token", KEYS):
        response = await client.get(path, headers=bearer(key))
        assert response.status_code == 401, (path, response.text)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "scopes": ["events:read"]},
        {"name": "x" * 101, "scopes": ["events:read"]},
        {"name": "billing", "scopes": []},
        {"name": "billing", "scopes": ["users:write"]},
        {"name": "billing"},
        {"name": "billing", "scopes": ["events:read"], "key": "bsk_chosen"},
    ],
)
async def test_bad_requests_for_a_key_are_422(
    app: tuple[httpx.AsyncClient, Services], body: dict[str, object]
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    response = await client.post(KEYS, json=body, headers=admin.headers)
    assert_problem(response, 422, "VALIDATION_ERROR")
