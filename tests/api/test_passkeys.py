"""Security keys and passkeys over HTTP with the software authenticator: registration, the
second step of a log-in, passkey log-in without a password, and every way an assertion is
refused (wrong origin, wrong RP ID, a replayed challenge, another user's credential, a counter
going backwards), while a synced passkey's counter of 0 works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from bastion.audit.model import EventType
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bench.webauthn_authenticator import Algorithm, Attestation, SoftwareAuthenticator
from tests.mfa_support import ORIGIN, account
from tests.support import (
    SmtpServer,
    app_with_user,
    assert_problem,
    bearer,
    login,
    refresh_cookie_header,
    verified_user,
)

MFA = "/api/v1/auth/mfa"
OPTIONS = "/api/v1/auth/passkey/options"
PASSKEY_LOGIN = "/api/v1/auth/passkey/login"


@dataclass
class World:
    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    smtp: SmtpServer

    async def signed_in_user(self) -> tuple[str, str]:
        email = await verified_user(self.client, self.smtp.mailbox, "passkey")
        response = await login(self.client, email)
        assert response.status_code == 200, response.text
        return email, response.json()["access_token"]

    async def register(
        self, access: str, key: SoftwareAuthenticator, *, passkey: bool = True
    ) -> dict[str, Any]:
        options = await self.client.post(
            f"{MFA}/webauthn/options", json={"passkey": passkey}, headers=bearer(access)
        )
        assert options.status_code == 200, options.text
        body = options.json()
        if passkey:
            assert body["authenticatorSelection"]["residentKey"] == "required"
            assert body["authenticatorSelection"]["userVerification"] == "required"
        response = await self.client.post(
            f"{MFA}/webauthn",
            json={"name": "Laptop", "credential": key.create(body, ORIGIN)},
            headers=bearer(access),
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def options(self) -> dict[str, Any]:
        response = await self.client.post(OPTIONS)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def passkey_login(self, credential: dict[str, Any], **extra: Any) -> httpx.Response:
        return await self.client.post(PASSKEY_LOGIN, json={"credential": credential, **extra})


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[World]:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "keys", clock=clock) as (client, services, _):
        yield World(client, services, clock, smtp)


def claims_of(access: str) -> dict[str, Any]:
    return jwt.decode(access, options={"verify_signature": False})


@pytest.mark.parametrize(("algorithm", "attestation"), [("ES256", "none"), ("Ed25519", "packed")])
async def test_a_passkey_logs_in_without_a_password_at_aal2(
    world: World, algorithm: Algorithm, attestation: Attestation
) -> None:
    key = SoftwareAuthenticator(algorithm=algorithm, attestation=attestation)
    email, access = await world.signed_in_user()
    registered = await world.register(access, key)
    assert registered["passkey"] is True and registered["type"] == "webauthn"
    options = await world.options()
    assert options["userVerification"] == "required"
    assert options.get("allowCredentials", []) == []
    response = await world.passkey_login(key.get(options, ORIGIN), remember_me=True)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"access_token", "token_type", "expires_in", "session_id"}
    assert "Max-Age=" in refresh_cookie_header(response)
    claims = claims_of(response.json()["access_token"])
    assert (claims["aal"], claims["amr"], claims["email"]) == ("aal2", ["hwk", "user"], email)


async def test_a_passkey_is_also_a_second_factor_after_the_password(world: World) -> None:
    email, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    first = await login(world.client, email)
    assert_problem(first, 403, "MFA_REQUIRED")
    assert first.json()["methods"] == ["webauthn", "recovery_code"]
    token = first.json()["mfa_token"]
    options = await world.client.post(
        "/api/v1/auth/login/mfa/webauthn-options", json={"mfa_token": token}
    )
    response = await world.client.post(
        "/api/v1/auth/login/mfa",
        json={"mfa_token": token, "credential": key.get(options.json(), ORIGIN)},
    )
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["amr"] == ["pwd", "hwk", "mfa"]


async def test_an_assertion_from_another_origin_is_refused(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    response = await world.passkey_login(key.get(await world.options(), "https://evil.example"))
    assert_problem(response, 401, "INVALID_CREDENTIAL")


async def test_an_assertion_for_another_rp_id_is_refused(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    credential = key.get(await world.options(), ORIGIN, rp_id="evil.example")
    assert_problem(await world.passkey_login(credential), 401, "INVALID_CREDENTIAL")


async def test_a_registration_for_another_rp_id_is_refused(world: World) -> None:
    _, access = await world.signed_in_user()
    options = await world.client.post(
        f"{MFA}/webauthn/options", json={"passkey": True}, headers=bearer(access)
    )
    credential = SoftwareAuthenticator().create(options.json(), ORIGIN, rp_id="evil.example")
    response = await world.client.post(
        f"{MFA}/webauthn", json={"credential": credential}, headers=bearer(access)
    )
    assert_problem(response, 400, "INVALID_CREDENTIAL")


async def test_a_challenge_answers_once(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    options = await world.options()
    assert (await world.passkey_login(key.get(options, ORIGIN))).status_code == 200
    replayed = await world.passkey_login(key.get(options, ORIGIN))
    assert_problem(replayed, 401, "INVALID_CREDENTIAL")


async def test_another_users_credential_cannot_pass_someones_second_step(world: World) -> None:
    mine_email, mine = await world.signed_in_user()
    _, theirs = await world.signed_in_user()
    my_key, their_key = SoftwareAuthenticator(), SoftwareAuthenticator()
    await world.register(mine, my_key, passkey=False)
    await world.register(theirs, their_key, passkey=False)
    token = (await login(world.client, mine_email)).json()["mfa_token"]
    options = await world.client.post(
        "/api/v1/auth/login/mfa/webauthn-options", json={"mfa_token": token}
    )
    [their_id] = their_key.credentials
    credential = their_key.get(
        {**options.json(), "allowCredentials": []}, ORIGIN, credential_id=their_id
    )
    response = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "credential": credential}
    )
    assert_problem(response, 401, "INVALID_CREDENTIAL")


async def test_a_security_key_that_is_not_a_passkey_cannot_log_in_alone(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key, passkey=False)
    response = await world.passkey_login(key.get(await world.options(), ORIGIN))
    assert_problem(response, 401, "INVALID_CREDENTIAL")


async def test_an_assertion_without_user_verification_is_refused(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    credential = key.get(await world.options(), ORIGIN, user_verified=False)
    assert_problem(await world.passkey_login(credential), 401, "INVALID_CREDENTIAL")


async def test_a_counter_going_backwards_is_refused_and_audited(world: World) -> None:
    email, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    assert (await world.passkey_login(key.get(await world.options(), ORIGIN))).status_code == 200
    assert (await world.passkey_login(key.get(await world.options(), ORIGIN))).status_code == 200
    lagging = key.get(await world.options(), ORIGIN, sign_count=1)
    assert_problem(await world.passkey_login(lagging), 401, "INVALID_CREDENTIAL")
    user = await account(world.services, email)
    async with world.services.uow(read_only=True) as uow:
        events = await uow.audit.list(
            user_id=user.id, type=EventType.WEBAUTHN_COUNTER_REGRESSED.value
        )
    assert len(events) == 1


async def test_a_synced_passkey_whose_counter_stays_zero_keeps_working(world: World) -> None:
    _, access = await world.signed_in_user()
    key = SoftwareAuthenticator(synced=True)
    await world.register(access, key)
    for _ in range(3):
        response = await world.passkey_login(key.get(await world.options(), ORIGIN))
        assert response.status_code == 200, response.text


async def test_a_disabled_account_cannot_log_in_with_its_passkey(world: World) -> None:
    email, access = await world.signed_in_user()
    key = SoftwareAuthenticator()
    await world.register(access, key)
    user = await account(world.services, email)
    async with world.services.uow() as uow:
        await uow.users.update(user.with_active(False, world.clock.now()))
        await uow.commit()
    response = await world.passkey_login(key.get(await world.options(), ORIGIN))
    assert_problem(response, 403, "ACCOUNT_DISABLED")


async def test_a_malformed_credential_is_invalid_not_a_crash(world: World) -> None:
    for credential in ({}, {"id": 1}, {"response": "x", "rawId": "!!"}):
        assert_problem(await world.passkey_login(credential), 401, "INVALID_CREDENTIAL")
    assert_problem(await world.client.post(PASSKEY_LOGIN, json={}), 422, "VALIDATION_ERROR")
