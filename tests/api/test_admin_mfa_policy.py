"""The role policy on the admin API (MFA_REQUIRED_ROLES=admin): an admin without a factor gets
403 MFA_ENROLLMENT_REQUIRED; with one, reads and writes need an aal2 token and writes a recent
one (403 REAUTHENTICATION_REQUIRED, aal_required "aal2"). Over every admin endpoint, for an
admin with no factor, with a factor at aal1, at aal2, and at aal2 gone stale. Then the admin's
MFA reset of a locked-out user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import httpx
import pytest

from bastion.accounts.model import Role
from bastion.audit.model import EventType
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.mfa_support import account, enrol_totp, totp_at
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    login,
    make_settings,
    random_email,
    running_app,
)

ADMIN = "/api/v1/admin"


class Standing(StrEnum):
    NO_FACTOR = "no_factor"
    FACTOR_AT_AAL1 = "factor_at_aal1"
    AAL2 = "aal2"
    STALE_AAL2 = "stale_aal2"


@dataclass
class World:
    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock

    async def user(self, role: Role = Role.USER) -> str:
        email = random_email(role.value)
        await self.services.accounts.create_user(email, STRONG_PASSWORD, role)
        return email

    async def admin_token(self, standing: Standing) -> str:
        email = await self.user(Role.ADMIN)
        if standing is Standing.NO_FACTOR:
            return await self.password_login(email)
        if standing is Standing.FACTOR_AT_AAL1:
            access = await self.password_login(email)
            await enrol_totp(self.services, self.clock, email)
            return access
        secret, _ = await enrol_totp(self.services, self.clock, email)
        first = await login(self.client, email)
        assert_problem(first, 403, "MFA_REQUIRED")
        passed = await self.client.post(
            "/api/v1/auth/login/mfa",
            json={"mfa_token": first.json()["mfa_token"], "code": totp_at(self.clock, secret)},
        )
        assert passed.status_code == 200, passed.text
        if standing is Standing.STALE_AAL2:
            self.clock.advance(901)
        token: str = passed.json()["access_token"]
        return token

    async def password_login(self, email: str) -> str:
        response = await login(self.client, email)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def target_id(self) -> str:
        return str((await account(self.services, await self.user())).id)


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[World]:
    clock = FrozenClock()
    settings = make_settings(database_url, smtp.url, mfa_required_roles=["admin"])
    async with running_app(settings, clock=clock) as (client, services):
        yield World(client, services, clock)


Call = Callable[[World, dict[str, str]], Awaitable[httpx.Response]]


async def list_users(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.get(f"{ADMIN}/users", headers=auth)


async def get_user(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.get(f"{ADMIN}/users/{await world.target_id()}", headers=auth)


async def list_events(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.get(f"{ADMIN}/audit-events", headers=auth)


async def update_user(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.patch(
        f"{ADMIN}/users/{await world.target_id()}", json={"is_verified": True}, headers=auth
    )


async def delete_user(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.delete(f"{ADMIN}/users/{await world.target_id()}", headers=auth)


async def reset_mfa(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.delete(f"{ADMIN}/users/{await world.target_id()}/mfa", headers=auth)


async def list_service_keys(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.get(f"{ADMIN}/service-keys", headers=auth)


async def create_service_key(world: World, auth: dict[str, str]) -> httpx.Response:
    body = {"name": "tasks", "scopes": ["events:read"]}
    return await world.client.post(f"{ADMIN}/service-keys", json=body, headers=auth)


async def list_webhooks(world: World, auth: dict[str, str]) -> httpx.Response:
    return await world.client.get(f"{ADMIN}/webhooks", headers=auth)


READS: dict[str, Call] = {
    "list_users": list_users,
    "get_user": get_user,
    "list_events": list_events,
    "list_service_keys": list_service_keys,
    "list_webhooks": list_webhooks,
}
WRITES: dict[str, Call] = {
    "update_user": update_user,
    "delete_user": delete_user,
    "reset_mfa": reset_mfa,
    "create_service_key": create_service_key,
}
SUCCESS = {"update_user": 200, "delete_user": 204, "reset_mfa": 204, "create_service_key": 201}


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
async def test_an_admin_without_a_factor_must_enrol_first(world: World, endpoint: str) -> None:
    auth = bearer(await world.admin_token(Standing.NO_FACTOR))
    call = {**READS, **WRITES}[endpoint]
    assert_problem(await call(world, auth), 403, "MFA_ENROLLMENT_REQUIRED")


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
async def test_an_admin_with_a_factor_needs_an_aal2_token_for_everything(
    world: World, endpoint: str
) -> None:
    auth = bearer(await world.admin_token(Standing.FACTOR_AT_AAL1))
    response = await {**READS, **WRITES}[endpoint](world, auth)
    assert_problem(response, 403, "REAUTHENTICATION_REQUIRED")
    assert response.json()["aal_required"] == "aal2"


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
async def test_an_admin_at_aal2_reads_and_writes(world: World, endpoint: str) -> None:
    auth = bearer(await world.admin_token(Standing.AAL2))
    response = await {**READS, **WRITES}[endpoint](world, auth)
    assert response.status_code == SUCCESS.get(endpoint, 200), response.text


@pytest.mark.parametrize("endpoint", [*READS, *WRITES])
async def test_a_stale_aal2_token_still_reads_but_writes_need_a_recent_one(
    world: World, endpoint: str
) -> None:
    auth = bearer(await world.admin_token(Standing.STALE_AAL2))
    response = await {**READS, **WRITES}[endpoint](world, auth)
    if endpoint in READS:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 403, "REAUTHENTICATION_REQUIRED")
        assert response.json()["aal_required"] == "aal2"


async def test_the_admin_view_of_a_user_shows_mfa_and_factor_types(world: World) -> None:
    auth = bearer(await world.admin_token(Standing.AAL2))
    email = await world.user()
    await enrol_totp(world.services, world.clock, email)
    user_id = (await account(world.services, email)).id
    body = (await world.client.get(f"{ADMIN}/users/{user_id}", headers=auth)).json()
    assert (body["mfa_enabled"], body["factor_types"]) == (True, ["totp"])


async def test_an_admin_mfa_reset_removes_factors_ends_sessions_emails_and_is_audited(
    world: World, smtp: SmtpServer
) -> None:
    auth = bearer(await world.admin_token(Standing.AAL2))
    email = await world.user()
    access = await world.password_login(email)
    await enrol_totp(world.services, world.clock, email)
    user = await account(world.services, email)
    response = await world.client.delete(f"{ADMIN}/users/{user.id}/mfa", headers=auth)
    assert response.status_code == 204
    status = await world.services.mfa.status(user)
    assert (status.mfa_enabled, status.recovery_codes_remaining) == (False, 0)
    revoked = await world.client.get("/api/v1/auth/verify-token", headers=bearer(access))
    assert_problem(revoked, 401, "SESSION_REVOKED")
    assert (await login(world.client, email)).status_code == 200
    message = await smtp.mailbox.wait_for(email, "second factor was removed")
    assert "administrator" in str(message.get_body(("plain",)).get_content())
    async with world.services.uow(read_only=True) as uow:
        [reset] = await uow.audit.list(user_id=user.id, type=EventType.MFA_RESET_BY_ADMIN.value)
    assert reset.details["factors_removed"] == 1
    missing = await world.client.delete(
        f"{ADMIN}/users/00000000-0000-0000-0000-000000000000/mfa", headers=auth
    )
    assert_problem(missing, 404, "USER_NOT_FOUND")
