"""Managing second factors over HTTP (every change needs a recent authentication) and step-up:
403 REAUTHENTICATION_REQUIRED with aal_required, and POST /reauthenticate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pyotp
import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.mfa_support import ORIGIN, account, totp_at
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    assert_problem,
    bearer,
    login,
    verified_user,
)

MFA = "/api/v1/auth/mfa"
REAUTH = "/api/v1/auth/reauthenticate"


@dataclass
class World:
    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    email: str
    access: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.access)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(path, json=body or {}, headers=self.auth)

    async def enrol_totp(self) -> tuple[str, dict[str, Any]]:
        """Add and confirm an authenticator app over HTTP: its secret and the confirmation's
        body. The access token becomes the aal2 one; the clock moves past the code's step."""
        started = await self.post(f"{MFA}/totp", {"name": "Phone"})
        assert started.status_code == 201, started.text
        secret = started.json()["secret"]
        factor_id = started.json()["factor_id"]
        confirmed = await self.post(
            f"{MFA}/totp/{factor_id}/confirm", {"code": totp_at(self.clock, secret)}
        )
        assert confirmed.status_code == 200, confirmed.text
        self.access = confirmed.json()["access_token"]
        self.clock.advance(30)
        return secret, confirmed.json()

    async def enrol_key(self, key: SoftwareAuthenticator, *, passkey: bool = False) -> Any:
        options = await self.post(f"{MFA}/webauthn/options", {"passkey": passkey})
        assert options.status_code == 200, options.text
        response = await self.post(
            f"{MFA}/webauthn",
            {"name": "My key", "credential": key.create(options.json(), ORIGIN)},
        )
        assert response.status_code == 201, response.text
        self.access = response.json()["access_token"]
        return response.json()


async def signed_in(client: httpx.AsyncClient, email: str) -> str:
    response = await login(client, email)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[World]:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "factors", clock=clock) as running:
        client, services, email = running
        yield World(client, services, clock, email, await signed_in(client, email))


def claims_of(access: str) -> dict[str, Any]:
    return jwt.decode(access, options={"verify_signature": False})


async def test_a_user_without_factors_sees_mfa_off(world: World) -> None:
    response = await world.client.get(MFA, headers=world.auth)
    assert response.status_code == 200
    assert response.json() == {
        "mfa_enabled": False,
        "required": False,
        "factors": [],
        "recovery_codes_remaining": 0,
    }
    assert_problem(await world.client.get(MFA), 401, "INVALID_TOKEN")


async def test_adding_an_authenticator_app_turns_mfa_on_with_recovery_codes_at_aal2(
    world: World,
) -> None:
    started = await world.post(f"{MFA}/totp", {"name": "Phone"})
    assert started.status_code == 201
    body = started.json()
    assert set(body) == {"factor_id", "secret", "otpauth_uri", "qr_svg"}
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].startswith("<svg")
    wrong = await world.post(f"{MFA}/totp/{body['factor_id']}/confirm", {"code": "000000"})
    assert_problem(wrong, 400, "INVALID_MFA_CODE")
    code = pyotp.TOTP(body["secret"]).at(world.clock.now())
    confirmed = await world.post(f"{MFA}/totp/{body['factor_id']}/confirm", {"code": code})
    assert confirmed.status_code == 200, confirmed.text
    assert len(confirmed.json()["recovery_codes"]) == 10
    claims = claims_of(confirmed.json()["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["pwd", "otp", "mfa"])
    assert claims["sid"] == claims_of(world.access)["sid"]
    listed = (await world.client.get(MFA, headers=bearer(confirmed.json()["access_token"]))).json()
    assert listed["mfa_enabled"] is True
    assert listed["recovery_codes_remaining"] == 10
    [factor] = listed["factors"]
    assert set(factor) == {"id", "type", "name", "passkey", "created_at", "last_used_at"}
    assert (factor["type"], factor["name"], factor["passkey"]) == ("totp", "Phone", False)


async def test_turning_mfa_on_leaves_other_sessions_aal1_and_unable_to_make_changes(
    world: World,
) -> None:
    other = await signed_in(world.client, world.email)
    await world.enrol_totp()
    sessions = (await world.client.get("/api/v1/auth/sessions", headers=world.auth)).json()
    assert sorted(s["aal"] for s in sessions) == ["aal1", "aal2"]
    refused = await world.client.post(f"{MFA}/totp", json={}, headers=bearer(other))
    assert_problem(refused, 403, "REAUTHENTICATION_REQUIRED")
    assert refused.json()["aal_required"] == "aal2"
    change = await world.client.post(
        "/api/v1/auth/change-password",
        json={"current_password": STRONG_PASSWORD, "new_password": "Another-Horse-8"},
        headers=bearer(other),
    )
    assert_problem(change, 403, "REAUTHENTICATION_REQUIRED")


async def test_a_stale_authentication_cannot_change_the_password_until_reauthenticated(
    world: World,
) -> None:
    world.clock.advance(901)
    body = {"current_password": STRONG_PASSWORD, "new_password": "Another-Horse-8"}
    change = await world.post("/api/v1/auth/change-password", body)
    assert_problem(change, 403, "REAUTHENTICATION_REQUIRED")
    assert change.json()["aal_required"] == "aal1"
    reauth = await world.post(REAUTH, {"password": STRONG_PASSWORD})
    assert reauth.status_code == 200, reauth.text
    assert set(reauth.json()) == {"access_token", "token_type", "expires_in"}
    claims = claims_of(reauth.json()["access_token"])
    assert claims["auth_time"] == int(world.clock.now().timestamp())
    assert claims["aal"] == "aal1"
    world.access = reauth.json()["access_token"]
    assert (await world.post("/api/v1/auth/change-password", body)).status_code == 204


async def test_reauthentication_with_a_password_and_a_code_reaches_aal2(world: World) -> None:
    secret, _ = await world.enrol_totp()
    world.clock.advance(901)
    assert_problem(await world.post(f"{MFA}/recovery-codes"), 403, "REAUTHENTICATION_REQUIRED")
    password_only = await world.post(REAUTH, {"password": STRONG_PASSWORD})
    assert claims_of(password_only.json()["access_token"])["aal"] == "aal1"
    world.access = password_only.json()["access_token"]
    assert_problem(await world.post(f"{MFA}/recovery-codes"), 403, "REAUTHENTICATION_REQUIRED")
    wrong = await world.post(REAUTH, {"password": STRONG_PASSWORD, "code": "000000"})
    assert_problem(wrong, 401, "INVALID_MFA_CODE")
    both = await world.post(
        REAUTH, {"password": STRONG_PASSWORD, "code": totp_at(world.clock, secret)}
    )
    assert both.status_code == 200, both.text
    claims = claims_of(both.json()["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["pwd", "otp", "mfa"])
    world.access = both.json()["access_token"]
    regenerated = await world.post(f"{MFA}/recovery-codes")
    assert regenerated.status_code == 200
    assert len(regenerated.json()["recovery_codes"]) == 10


async def test_a_wrong_password_at_reauthentication_is_invalid_credentials(world: World) -> None:
    response = await world.post(REAUTH, {"password": "Wrong-Horse-1"})
    assert_problem(response, 401, "INVALID_CREDENTIALS")
    assert_problem(await world.post(REAUTH, {"code": "123456"}), 422, "VALIDATION_ERROR")
    assert_problem(await world.client.post(REAUTH, json={"password": "x"}), 401, "INVALID_TOKEN")


async def test_wrong_passwords_at_reauthentication_count_towards_the_lockout(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "factors", login_max_failures=3) as running:
        client, _, email = running
        access = await signed_in(client, email)
        answers = [
            await client.post(REAUTH, json={"password": "Wrong-Horse-1"}, headers=bearer(access))
            for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        assert answers[-1].json()["code"] == "TOO_MANY_ATTEMPTS"


async def test_the_new_recovery_codes_replace_the_previous_set(world: World) -> None:
    _, confirmed = await world.enrol_totp()
    old = confirmed["recovery_codes"][0]
    new = (await world.post(f"{MFA}/recovery-codes")).json()["recovery_codes"]
    first = await login(world.client, world.email)
    token = first.json()["mfa_token"]
    refused = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "code": old}
    )
    assert_problem(refused, 401, "INVALID_MFA_CODE")
    passed = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "code": new[0]}
    )
    assert passed.status_code == 200, passed.text


async def test_factors_are_renamed_and_removed_by_their_owner_only(
    world: World, smtp: SmtpServer
) -> None:
    await world.enrol_totp()
    [factor] = (await world.client.get(MFA, headers=world.auth)).json()["factors"]
    renamed = await world.client.patch(
        f"{MFA}/{factor['id']}", json={"name": "Work phone"}, headers=world.auth
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Work phone"
    stranger = await signed_in(world.client, await verified_user(world.client, smtp.mailbox))
    theirs = await world.client.patch(
        f"{MFA}/{factor['id']}", json={"name": "Mine"}, headers=bearer(stranger)
    )
    assert_problem(theirs, 404, "NOT_FOUND")
    removed = await world.client.delete(f"{MFA}/{factor['id']}", headers=bearer(stranger))
    assert_problem(removed, 404, "NOT_FOUND")
    assert (
        await world.client.delete(f"{MFA}/{factor['id']}", headers=world.auth)
    ).status_code == 204
    after = (await world.client.get(MFA, headers=world.auth)).json()
    assert (after["mfa_enabled"], after["recovery_codes_remaining"]) == (False, 0)
    assert (await login(world.client, world.email)).status_code == 200


async def test_recovery_codes_need_a_factor(world: World) -> None:
    assert_problem(await world.post(f"{MFA}/recovery-codes"), 409, "MFA_NOT_ENABLED")


async def test_a_role_that_requires_mfa_cannot_remove_its_last_factor(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(
        database_url, smtp, "factors", clock=clock, mfa_required_roles=["admin"]
    ) as (client, services, email):
        user = await account(services, email)
        async with services.uow() as uow:
            await uow.users.update(user.with_role(Role.ADMIN, clock.now()))
            await uow.commit()
        world = World(client, services, clock, email, await signed_in(client, email))
        await world.enrol_totp()
        [factor] = (await client.get(MFA, headers=world.auth)).json()["factors"]
        refused = await client.delete(f"{MFA}/{factor['id']}", headers=world.auth)
        assert_problem(refused, 409, "MFA_REQUIRED_BY_ROLE")


async def test_a_security_key_is_registered_over_http_and_brings_aal2(world: World) -> None:
    key = SoftwareAuthenticator(attestation="packed", algorithm="Ed25519")
    body = await world.enrol_key(key)
    assert body["type"] == "webauthn" and body["passkey"] is False
    assert len(body["recovery_codes"]) == 10
    claims = claims_of(body["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["pwd", "hwk", "mfa"])
    second = await world.enrol_key(SoftwareAuthenticator())
    assert second["recovery_codes"] is None


async def test_a_registration_with_a_wrong_origin_or_a_replayed_challenge_is_refused(
    world: World,
) -> None:
    key = SoftwareAuthenticator()
    options = (await world.post(f"{MFA}/webauthn/options", {})).json()
    wrong_origin = await world.post(
        f"{MFA}/webauthn", {"credential": key.create(options, "https://evil.example")}
    )
    assert_problem(wrong_origin, 400, "INVALID_CREDENTIAL")
    replayed = await world.post(f"{MFA}/webauthn", {"credential": key.create(options, ORIGIN)})
    assert_problem(replayed, 400, "INVALID_CREDENTIAL")


async def test_a_passkey_alone_reauthenticates_at_aal2(world: World) -> None:
    key = SoftwareAuthenticator()
    await world.enrol_key(key, passkey=True)
    world.clock.advance(901)
    options = await world.post(f"{REAUTH}/webauthn-options")
    assert options.status_code == 200
    response = await world.post(REAUTH, {"credential": key.get(options.json(), ORIGIN)})
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["hwk", "user"])


async def test_a_security_key_that_is_no_passkey_cannot_reauthenticate_alone(
    world: World,
) -> None:
    key = SoftwareAuthenticator()
    await world.enrol_key(key)
    options = await world.post(f"{REAUTH}/webauthn-options")
    response = await world.post(REAUTH, {"credential": key.get(options.json(), ORIGIN)})
    assert_problem(response, 401, "INVALID_CREDENTIAL")
