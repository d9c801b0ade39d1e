"""Admins create and invite users, see and end their sessions, and send them a reset link."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.api.test_admin import ADMIN, NOT_FOUND_ID, PASSWORD, make_user
from tests.support import (
    PUBLIC_URL,
    SmtpServer,
    assert_problem,
    bearer,
    login,
    random_email,
    text_of,
    token_in,
    verify_token,
)

ACCEPT = "/api/v1/auth/accept-invite"


async def test_an_admin_creates_a_verified_user_with_a_password(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    email = random_email("made")
    body = {"email": email, "role": "manager", "password": PASSWORD}
    response = await client.post(f"{ADMIN}/users", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["email"] == email and made["role"] == "manager" and made["is_verified"] is True
    assert (await login(client, email, PASSWORD)).status_code == 200
    again = await client.post(f"{ADMIN}/users", json=body, headers=admin.headers)
    assert_problem(again, 409, "EMAIL_TAKEN")
    weak = {"email": random_email("weak"), "password": "short"}
    assert_problem(
        await client.post(f"{ADMIN}/users", json=weak, headers=admin.headers), 422, "WEAK_PASSWORD"
    )
    for bad in (
        {"email": random_email()},
        {"email": random_email(), "invite": True, "password": PASSWORD},
        {"email": "x", "invite": True},
        {"email": random_email(), "invite": True, "role": "root"},
    ):
        response = await client.post(f"{ADMIN}/users", json=bad, headers=admin.headers)
        assert_problem(response, 422, "VALIDATION_ERROR")


async def test_an_invited_user_chooses_a_password_and_ends_up_verified(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    email = random_email("invited")
    body = {"email": email, "role": "user", "invite": True}
    response = await client.post(f"{ADMIN}/users", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    assert response.json()["is_verified"] is False
    message = await smtp.mailbox.wait_for(email, "invited")
    assert f"{PUBLIC_URL}/accept-invite?token=" in text_of(message)
    token = token_in(message, "/accept-invite")
    assert (await login(client, email, PASSWORD)).status_code == 401

    weak = await client.post(ACCEPT, json={"token": token, "password": "short"})
    assert_problem(weak, 422, "WEAK_PASSWORD")
    accepted = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    signed_in = await login(client, email, PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    me = await client.get("/api/v1/auth/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["is_verified"] is True
    spent = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert_problem(spent, 400, "TOKEN_INVALID")
    unknown = await client.post(ACCEPT, json={"token": "x" * 43, "password": PASSWORD})
    assert_problem(unknown, 400, "TOKEN_INVALID")


async def test_an_expired_invitation_is_refused(
    clocked_app: tuple[httpx.AsyncClient, Services, FrozenClock], smtp: SmtpServer
) -> None:
    client, services, clock = clocked_app
    admin = await make_user(client, services, Role.ADMIN)
    email = random_email("late-invite")
    body = {"email": email, "invite": True}
    assert (
        await client.post(f"{ADMIN}/users", json=body, headers=admin.headers)
    ).status_code == 201
    token = token_in(await smtp.mailbox.wait_for(email, "invited"), "/accept-invite")
    clock.advance(7 * 86400 + 1)
    expired = await client.post(ACCEPT, json={"token": token, "password": PASSWORD})
    assert_problem(expired, 410, "TOKEN_EXPIRED")


async def test_an_admin_sees_and_ends_a_users_sessions(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    manager = await make_user(client, services, Role.MANAGER)
    target = await make_user(client, services, Role.USER)
    second = (await login(client, target.email, PASSWORD)).json()["access_token"]
    sessions = f"{ADMIN}/users/{target.id}/sessions"
    listed = await client.get(sessions, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()
    assert len(items) == 2 and all(item["current"] is False for item in items)
    assert set(items[0]) == {
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
        "remember_me",
        "current",
    }
    assert_problem(await client.get(sessions, headers=manager.headers), 403, "FORBIDDEN")
    assert_problem(await client.get(sessions, headers=target.headers), 403, "FORBIDDEN")
    missing = await client.get(f"{ADMIN}/users/{NOT_FOUND_ID}/sessions", headers=admin.headers)
    assert_problem(missing, 404, "USER_NOT_FOUND")

    second_sid = next(i["id"] for i in items if i["id"] != target_sid(target.token))
    one = await client.delete(f"{sessions}/{second_sid}", headers=admin.headers)
    assert one.status_code == 204, one.text
    assert_problem(await verify_token(client, second), 401, "SESSION_REVOKED")
    assert (await verify_token(client, target.token)).status_code == 200
    gone = await client.delete(f"{sessions}/{second_sid}", headers=admin.headers)
    assert_problem(gone, 404, "SESSION_NOT_FOUND")
    everything = await client.delete(sessions, headers=admin.headers)
    assert everything.status_code == 204
    assert_problem(await verify_token(client, target.token), 401, "SESSION_REVOKED")


def target_sid(token: str) -> str:
    payload = token.split(".")[1]
    sid: str = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    return sid


async def test_an_admin_sends_the_normal_reset_email(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    response = await client.post(f"{ADMIN}/users/{target.id}/password-reset", headers=admin.headers)
    assert response.status_code == 202, response.text
    token = token_in(
        await smtp.mailbox.wait_for(target.email, "reset your password"), "/reset-password"
    )
    reset = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "Another-Horse-8"}
    )
    assert reset.status_code == 200, reset.text
    assert (await login(client, target.email, "Another-Horse-8")).status_code == 200
    missing = await client.post(
        f"{ADMIN}/users/{NOT_FOUND_ID}/password-reset", headers=admin.headers
    )
    assert_problem(missing, 404, "USER_NOT_FOUND")


async def test_admin_actions_carry_the_admin_in_the_trail_but_not_in_the_users_own_events(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    await client.post(f"{ADMIN}/users/{target.id}/password-reset", headers=admin.headers)
    await client.delete(f"{ADMIN}/users/{target.id}/sessions", headers=admin.headers)
    trail = await client.get(
        f"{ADMIN}/audit-events", params={"user_id": target.id}, headers=admin.headers
    )
    by_type = {item["type"]: item for item in trail.json()["items"]}
    for kind in ("reset_requested", "all_sessions_revoked"):
        assert by_type[kind]["details"]["actor_id"] == admin.id
    fresh = (await login(client, target.email, PASSWORD)).json()["access_token"]
    own = await client.get("/api/v1/auth/me/security-events", headers=bearer(fresh))
    assert own.status_code == 200
    own_types = {item["type"] for item in own.json()["items"]}
    assert {"reset_requested", "all_sessions_revoked"} <= own_types
    assert admin.id not in own.text and admin.email not in own.text
    assert "actor_id" not in own.text


async def test_revocation_by_an_admin_is_seen_within_a_second(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    assert (await verify_token(client, target.token)).status_code == 200
    await client.delete(f"{ADMIN}/users/{target.id}/sessions", headers=admin.headers)
    await asyncio.sleep(1)
    assert_problem(await verify_token(client, target.token), 401, "SESSION_REVOKED")


async def test_admin_writes_need_a_recent_authentication_and_reads_do_not(
    clocked_app: tuple[httpx.AsyncClient, Services, FrozenClock],
) -> None:
    client, services, clock = clocked_app
    admin = await make_user(client, services, Role.ADMIN)
    target = await make_user(client, services, Role.USER)
    clock.advance(901)
    user = f"{ADMIN}/users/{target.id}"
    writes = [
        ("POST", f"{ADMIN}/users", {"email": random_email(), "invite": True}),
        ("PATCH", user, {"is_verified": True}),
        ("DELETE", f"{user}/sessions", None),
        ("DELETE", f"{user}/sessions/{NOT_FOUND_ID}", None),
        ("POST", f"{user}/password-reset", None),
        ("DELETE", user, None),
    ]
    for method, path, body in writes:
        response = await client.request(method, path, json=body, headers=admin.headers)
        assert_problem(response, 403, "REAUTHENTICATION_REQUIRED")
    for path in (user, f"{user}/sessions", f"{ADMIN}/users", f"{ADMIN}/signing-keys"):
        assert (await client.get(path, headers=admin.headers)).status_code == 200, path
