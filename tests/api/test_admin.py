"""The admin API over HTTP: who may call what, paging and filters, and the user lifecycle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bastion.accounts.model import Role
from bastion.adapters.sql import tables
from bastion.audit.model import ERASED, EventType, event
from bastion.bootstrap import Services
from bastion.core.context import RequestContext
from bastion.migrate import upgrade
from tests.conftest import BACKENDS
from tests.support import (
    SmtpServer,
    bearer,
    login,
    make_settings,
    migrated_postgres_database,
    random_email,
    running_app,
    verified_user,
)

ADMIN = "/api/v1/admin"
NOT_FOUND_ID = "00000000-0000-4000-8000-000000000000"
PASSWORD = "Correct-Horse-7"


@dataclass(frozen=True)
class Caller:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def make_user(
    client: httpx.AsyncClient, services: Services, role: Role, prefix: str = "member"
) -> Caller:
    """A verified user of ``role``, created the way an operator would, and logged in."""
    email = random_email(f"{prefix}-{role.value}")
    user = await services.accounts.create_user(email, PASSWORD, role)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return Caller(str(user.id), email, response.json()["access_token"])


async def me_status(client: httpx.AsyncClient, caller: Caller) -> httpx.Response:
    return await client.get("/api/v1/auth/me", headers=caller.headers)


async def actor_and_target(
    app: tuple[httpx.AsyncClient, Services], actor_role: Role, target_role: Role = Role.USER
) -> tuple[httpx.AsyncClient, Services, Caller, Caller]:
    """The app's client and services, a caller of ``actor_role`` and a user for them to act on."""
    client, services = app
    actor = await make_user(client, services, actor_role)
    target = await make_user(client, services, target_role)
    return client, services, actor, target


async def patch_user(
    client: httpx.AsyncClient, actor: Caller, user_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{ADMIN}/users/{user_id}", json=body, headers=actor.headers)


async def list_users(client: httpx.AsyncClient, actor: Caller, **params: Any) -> httpx.Response:
    return await client.get(f"{ADMIN}/users", params=params, headers=actor.headers)


async def audit_trail(client: httpx.AsyncClient, actor: Caller, **params: Any) -> httpx.Response:
    return await client.get(f"{ADMIN}/audit-events", params=params, headers=actor.headers)


# (method, path, json body, roles allowed, success status). ``{id}`` is another user's id.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, set[Role], int]] = [
    ("GET", "/users", None, {Role.ADMIN, Role.MANAGER}, 200),
    ("GET", "/users/{id}", None, {Role.ADMIN, Role.MANAGER}, 200),
    ("PATCH", "/users/{id}", {"is_verified": True}, {Role.ADMIN}, 200),
    ("DELETE", "/users/{id}", None, {Role.ADMIN}, 204),
    ("GET", "/audit-events", None, {Role.ADMIN, Role.MANAGER}, 200),
]


@pytest.mark.parametrize("role", [*Role, None], ids=[*(r.value for r in Role), "anonymous"])
@pytest.mark.parametrize(
    ("method", "path", "body", "allowed", "success"),
    ENDPOINTS,
    ids=[f"{method} {path}" for method, path, *_ in ENDPOINTS],
)
async def test_each_admin_endpoint_admits_only_the_roles_it_names(
    app: tuple[httpx.AsyncClient, Services],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    allowed: set[Role],
    success: int,
    role: Role | None,
) -> None:
    client, services = app
    target = await make_user(client, services, Role.USER, "target")
    headers = (await make_user(client, services, role)).headers if role else {}
    response = await client.request(
        method, ADMIN + path.format(id=target.id), json=body, headers=headers
    )
    if role is None:
        assert response.status_code == 401
        assert response.json()["code"] == "INVALID_TOKEN"
    elif role in allowed:
        assert response.status_code == success, response.text
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"


async def test_users_are_listed_page_by_page_and_filtered_by_email_and_role(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    manager = await make_user(client, services, Role.MANAGER)
    marker = uuid.uuid4().hex[:10]
    roles = [Role.USER, Role.USER, Role.GUEST, Role.USER, Role.MANAGER]
    created = set()
    for i, role in enumerate(roles):
        user = await services.accounts.create_user(f"{marker}-{i}@example.com", PASSWORD, role)
        created.add(str(user.id))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"email": marker.upper(), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await list_users(client, manager, **params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        assert all("password_hash" not in item for item in page["items"])
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) and set(seen) == created

    guests = await list_users(client, manager, email=marker, role="guest")
    assert [item["email"] for item in guests.json()["items"]] == [f"{marker}-2@example.com"]
    bad_role = await list_users(client, manager, role="root")
    assert bad_role.status_code == 422


async def test_a_user_is_shown_without_the_password_hash_and_unknown_ids_are_404(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _, manager, target = await actor_and_target(app, Role.MANAGER, Role.GUEST)
    response = await client.get(f"{ADMIN}/users/{target.id}", headers=manager.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == target.email and body["role"] == "guest" and body["is_active"] is True
    assert "password" not in response.text and "argon2" not in response.text
    missing = await client.get(f"{ADMIN}/users/{NOT_FOUND_ID}", headers=manager.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "USER_NOT_FOUND"
    cursor = await list_users(client, manager, cursor="x")
    assert cursor.status_code == 400 and cursor.json()["code"] == "INVALID_CURSOR"


async def test_patch_rejects_fields_an_admin_may_not_set(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _, admin, target = await actor_and_target(app, Role.ADMIN)
    for body in ({"email": "new@example.com"}, {"password_hash": "x"}, {"role": "root"}):
        response = await patch_user(client, admin, target.id, body)
        assert response.status_code == 422, body
        assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {"is_active": "no"},
        {"is_active": "false"},
        {"is_active": 0},
        {"is_verified": 0},
        {"is_verified": "yes"},
        {"is_verified": 1},
    ],
)
async def test_patch_takes_only_json_booleans_for_flags(
    app: tuple[httpx.AsyncClient, Services], body: dict[str, Any]
) -> None:
    client, _, admin, target = await actor_and_target(app, Role.ADMIN)
    response = await patch_user(client, admin, target.id, body)
    assert response.status_code == 422, body
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["errors"][0]["loc"] == ["body", *body]
    unchanged = await client.get(f"{ADMIN}/users/{target.id}", headers=admin.headers)
    assert unchanged.json()["is_active"] is True and unchanged.json()["is_verified"] is True


async def test_deactivating_a_user_ends_their_sessions_until_they_are_enabled_again(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _, admin, target = await actor_and_target(app, Role.ADMIN)
    assert (await me_status(client, target)).status_code == 200

    disabled = await patch_user(client, admin, target.id, {"is_active": False})
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    revoked = await me_status(client, target)
    assert revoked.status_code == 401 and revoked.json()["code"] == "SESSION_REVOKED"
    refused = await login(client, target.email)
    assert refused.status_code == 403 and refused.json()["code"] == "ACCOUNT_DISABLED"

    enabled = await patch_user(client, admin, target.id, {"is_active": True})
    assert enabled.status_code == 200 and enabled.json()["is_active"] is True
    assert (await login(client, target.email)).status_code == 200

    trail = await audit_trail(client, admin, user_id=target.id)
    types = [item["type"] for item in trail.json()["items"]]
    assert types.index("user_enabled") < types.index("user_disabled")  # newest first
    disabled_event = next(i for i in trail.json()["items"] if i["type"] == "user_disabled")
    assert disabled_event["details"]["actor_id"] == admin.id


async def test_a_role_change_is_audited_and_takes_effect_at_the_next_login(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _, admin, target = await actor_and_target(app, Role.ADMIN)
    assert (await list_users(client, target)).status_code == 403

    promoted = await patch_user(client, admin, target.id, {"role": "manager"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "manager"
    # The old token claims the old role, so it stops working.
    assert (await me_status(client, target)).json()["code"] == "SESSION_REVOKED"
    token = (await login(client, target.email)).json()["access_token"]
    assert (await client.get(f"{ADMIN}/users", headers=bearer(token))).status_code == 200
    assert (
        await client.delete(f"{ADMIN}/users/{admin.id}", headers=bearer(token))
    ).status_code == 403

    trail = await audit_trail(client, admin, user_id=target.id, type="role_changed")
    [changed] = trail.json()["items"]
    assert changed["details"] == {"actor_id": admin.id, "old_role": "user", "new_role": "manager"}


async def test_audit_events_come_newest_first_page_by_page(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, _, manager, target = await actor_and_target(app, Role.MANAGER)
    for _ in range(3):
        assert (await login(client, target.email, "Wrong-Horse-7")).status_code == 401
    ids: list[int] = []
    params: dict[str, Any] = {"user_id": target.id, "type": "login_failed", "limit": 2}
    while True:
        page = await audit_trail(client, manager, **params)
        assert page.status_code == 200, page.text
        assert {item["type"] for item in page.json()["items"]} <= {"login_failed"}
        ids += [item["id"] for item in page.json()["items"]]
        if page.json()["next_cursor"] is None:
            break
        params["cursor"] = page.json()["next_cursor"]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    everything = await audit_trail(client, manager, user_id=target.id)
    assert {item["type"] for item in everything.json()["items"]} == {
        "login_failed",
        "login_succeeded",
    }


async def test_deleting_a_user_forgets_them_and_erases_their_email_from_the_audit_trail(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    email = await verified_user(client, smtp.mailbox, "forget-me")
    token = (await login(client, email, remember_me=True)).json()["access_token"]
    user_id = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()["id"]
    async with services.uow() as uow:
        # An event naming the address, as a support note or a lockout might.
        await uow.audit.record(
            event(
                EventType.ACCOUNT_PROTECTED,
                services.clock.now(),
                RequestContext(),
                uuid.UUID(user_id),
                note=f"Locked {email.upper()} after complaints",
                emails=[email, "someone-else@example.com"],
            )
        )
        await uow.commit()

    deleted = await client.delete(f"{ADMIN}/users/{user_id}", headers=admin.headers)
    assert deleted.status_code == 204

    assert (await client.get(f"{ADMIN}/users/{user_id}", headers=admin.headers)).status_code == 404
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401
    assert (await login(client, email)).json()["code"] == "INVALID_CREDENTIALS"
    trail = await audit_trail(client, admin, user_id=user_id)
    items = trail.json()["items"]
    assert {"user_deleted", "registered", "account_protected"} <= {i["type"] for i in items}
    assert email not in trail.text.lower()
    protected = next(i for i in items if i["type"] == "account_protected")
    assert protected["details"] == {
        "note": f"Locked {ERASED} after complaints",
        "emails": [ERASED, "someone-else@example.com"],
    }
    async with services.engine.connect() as connection:
        for table in (tables.sessions, tables.outbox):
            column = table.c.user_id if table is tables.sessions else table.c.recipient
            value: Any = uuid.UUID(user_id) if table is tables.sessions else email
            count = (await connection.execute(select(func.count()).where(column == value))).scalar()
            assert count == 0, table.name


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own: the last-admin rule counts every admin in it."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'admins.db'}"
        upgrade(url)
        yield url
        return
    with migrated_postgres_database() as url:
        yield url


@pytest.fixture
async def lone_app(
    empty_database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with running_app(make_settings(empty_database_url, smtp.url)) as running:
        yield running


async def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(
    lone_app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = lone_app
    admin = await make_user(client, services, Role.ADMIN)
    url = f"{ADMIN}/users/{admin.id}"
    for body in ({"role": "manager"}, {"is_active": False}):
        refused = await client.patch(url, json=body, headers=admin.headers)
        assert refused.status_code == 409 and refused.json()["code"] == "LAST_ADMIN"
    refused = await client.delete(url, headers=admin.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "LAST_ADMIN"

    # An inactive admin does not count: enabling is what makes them one again.
    spare = await make_user(client, services, Role.ADMIN)
    disabled = await patch_user(client, admin, spare.id, {"is_active": False})
    assert disabled.status_code == 200
    assert (await client.delete(url, headers=admin.headers)).status_code == 409

    successor = await make_user(client, services, Role.ADMIN)
    assert (
        await client.patch(url, json={"role": "user"}, headers=admin.headers)
    ).status_code == 200
    assert (await client.get(url, headers=successor.headers)).json()["role"] == "user"


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    lone_app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = lone_app
    first = await make_user(client, services, Role.ADMIN)
    second = await make_user(client, services, Role.ADMIN)
    responses = await asyncio.gather(
        patch_user(client, first, second.id, {"role": "user"}),
        patch_user(client, second, first.id, {"role": "user"}),
    )
    statuses = sorted(response.status_code for response in responses)
    # The loser either finds the other's change committed (409) or its own session ended (401).
    assert statuses[0] == 200 and statuses[1] in {401, 409}, [r.text for r in responses]
    async with services.uow(read_only=True) as uow:
        assert await uow.users.count_active_admins() == 1


ADMIN_CODES = {
    ("/users", "get"): {"INVALID_TOKEN", "FORBIDDEN", "INVALID_CURSOR"},
    ("/users/{user_id}", "get"): {"INVALID_TOKEN", "FORBIDDEN", "USER_NOT_FOUND"},
    ("/users/{user_id}", "patch"): {"FORBIDDEN", "USER_NOT_FOUND", "LAST_ADMIN"},
    ("/users/{user_id}", "delete"): {"FORBIDDEN", "USER_NOT_FOUND", "LAST_ADMIN"},
    ("/audit-events", "get"): {"SESSION_REVOKED", "FORBIDDEN", "INVALID_CURSOR"},
}


async def test_openapi_documents_the_admin_endpoints_and_their_error_codes(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for (path, method), codes in ADMIN_CODES.items():
        responses = paths[ADMIN + path][method]["responses"]
        documented = " ".join(response["description"] for response in responses.values())
        assert all(code in documented for code in codes), (path, method, documented)
    for path in ("/healthz", "/readyz", "/metrics"):
        assert path in paths
