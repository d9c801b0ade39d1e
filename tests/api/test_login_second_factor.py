"""A log-in with a second factor over HTTP: 403 MFA_REQUIRED after a right password, then
POST /login/mfa with a TOTP code, a recovery code or a security key, giving exactly a normal
log-in at aal2. Real codes come from pyotp at an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.mfa_support import CONTEXT, ORIGIN, account, enrol_totp, totp_at
from tests.page_forms import page_sign_in
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    assert_problem,
    forgot_password,
    login,
    refresh_cookie_header,
    token_in,
    verify_token,
)

LOGIN_FIELDS = {"access_token", "token_type", "expires_in", "session_id"}


@dataclass
class World:
    client: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    email: str
    secret: str
    recovery_codes: list[str]

    async def mfa_token(self, *, remember_me: bool = False) -> str:
        response = await login(self.client, self.email, remember_me=remember_me)
        assert_problem(response, 403, "MFA_REQUIRED")
        token: str = response.json()["mfa_token"]
        return token

    async def second_step(self, mfa_token: str, code: str) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": code}
        )

    def code(self, steps: int = 0) -> str:
        return totp_at(self.clock, self.secret, steps)


@pytest.fixture
async def world(database_url: str, smtp: SmtpServer) -> AsyncIterator[World]:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "second", clock=clock) as (
        client,
        services,
        email,
    ):
        secret, codes = await enrol_totp(services, clock, email)
        yield World(client, services, clock, email, secret, codes)


def claims_of(access: str) -> dict[str, object]:
    return jwt.decode(access, options={"verify_signature": False})


async def test_a_right_password_with_mfa_on_answers_mfa_required_with_a_token(
    world: World,
) -> None:
    response = await login(world.client, world.email, remember_me=True)
    assert_problem(response, 403, "MFA_REQUIRED")
    body = response.json()
    assert body["methods"] == ["totp", "recovery_code"]
    assert body["expires_in"] == 300
    assert len(body["mfa_token"]) >= 43  # 256 random bits, base64url
    assert response.headers.get_list("set-cookie") == []


async def test_a_wrong_password_is_still_invalid_credentials_with_mfa_on(world: World) -> None:
    assert_problem(
        await login(world.client, world.email, "Wrong-Horse-1"), 401, "INVALID_CREDENTIALS"
    )


async def test_the_second_step_gives_exactly_a_login_at_aal2_with_remember_me_carried(
    world: World,
) -> None:
    token = await world.mfa_token(remember_me=True)
    response = await world.second_step(token, world.code())
    assert response.status_code == 200, response.text
    assert set(response.json()) == LOGIN_FIELDS
    assert "Max-Age=" in refresh_cookie_header(response)
    assert any(c.startswith("bastion_device=") for c in response.headers.get_list("set-cookie"))
    claims = claims_of(response.json()["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["pwd", "otp", "mfa"])
    body = (await verify_token(world.client, response.json()["access_token"])).json()
    assert body["aal"] == "aal2"


async def test_without_remember_me_there_is_no_refresh_cookie(world: World) -> None:
    response = await world.second_step(await world.mfa_token(), world.code())
    assert response.status_code == 200
    assert not any(
        c.startswith("bastion_refresh=") for c in response.headers.get_list("set-cookie")
    )


async def test_a_wrong_code_a_replayed_code_and_an_unknown_token_are_refused(
    world: World,
) -> None:
    token = await world.mfa_token()
    assert_problem(await world.second_step(token, "000000"), 401, "INVALID_MFA_CODE")
    code = world.code()
    assert (await world.second_step(token, code)).status_code == 200
    replay = await world.second_step(await world.mfa_token(), code)
    assert_problem(replay, 401, "INVALID_MFA_CODE")
    assert_problem(await world.second_step("not-a-token", world.code(1)), 401, "MFA_TOKEN_INVALID")
    assert_problem(await world.second_step(token, world.code(1)), 401, "MFA_TOKEN_INVALID")


async def test_the_fifth_wrong_code_burns_the_token(world: World) -> None:
    token = await world.mfa_token()
    for _ in range(5):
        assert_problem(await world.second_step(token, "000000"), 401, "INVALID_MFA_CODE")
    assert_problem(await world.second_step(token, world.code()), 401, "MFA_TOKEN_INVALID")


async def test_an_expired_token_is_invalid(world: World) -> None:
    token = await world.mfa_token()
    world.clock.advance(301)
    assert_problem(await world.second_step(token, world.code()), 401, "MFA_TOKEN_INVALID")


async def test_ten_failed_second_steps_answer_429_with_retry_after_whatever_the_token(
    world: World, smtp: SmtpServer
) -> None:
    for _ in range(2):
        token = await world.mfa_token()
        for _ in range(5):
            assert_problem(await world.second_step(token, "000000"), 401, "INVALID_MFA_CODE")
    response = await world.second_step(await world.mfa_token(), world.code())
    assert_problem(response, 429, "TOO_MANY_ATTEMPTS")
    assert int(response.headers["Retry-After"]) > 0
    await smtp.mailbox.wait_for(world.email, "")


async def test_a_recovery_code_passes_the_second_step_once(world: World) -> None:
    code = world.recovery_codes[0]
    response = await world.second_step(await world.mfa_token(), code)
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    again = await world.second_step(await world.mfa_token(), code)
    assert_problem(again, 401, "INVALID_MFA_CODE")


async def test_parallel_uses_of_one_token_give_exactly_one_session(world: World) -> None:
    token = await world.mfa_token()
    code = world.code()
    answers = await asyncio.gather(*(world.second_step(token, code) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]
    user = await account(world.services, world.email)
    assert len(await world.services.sessions.list_sessions(user.id)) == 1


async def test_parallel_uses_of_one_code_with_two_tokens_give_exactly_one_session(
    world: World,
) -> None:
    tokens = [await world.mfa_token() for _ in range(3)]
    code = world.code()
    answers = await asyncio.gather(*(world.second_step(token, code) for token in tokens))
    assert sorted(a.status_code for a in answers) == [200, 401, 401]
    user = await account(world.services, world.email)
    assert len(await world.services.sessions.list_sessions(user.id)) == 1


async def test_a_security_key_passes_the_second_step_at_aal2_by_hardware_key(
    world: World,
) -> None:
    key = SoftwareAuthenticator()
    user = await account(world.services, world.email)
    options = await world.services.mfa.registration_options(user, passkey=False)
    await world.services.mfa.register_webauthn(user, "Key", key.create(options, ORIGIN), CONTEXT)
    token = await world.mfa_token()
    options_response = await world.client.post(
        "/api/v1/auth/login/mfa/webauthn-options", json={"mfa_token": token}
    )
    assert options_response.status_code == 200, options_response.text
    request_options = options_response.json()
    assert [c["id"] for c in request_options["allowCredentials"]]
    credential = key.get(request_options, ORIGIN)
    response = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "credential": credential}
    )
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert (claims["aal"], claims["amr"]) == ("aal2", ["pwd", "hwk", "mfa"])


async def test_a_bad_assertion_is_invalid_credential(world: World) -> None:
    key = SoftwareAuthenticator()
    user = await account(world.services, world.email)
    options = await world.services.mfa.registration_options(user, passkey=False)
    await world.services.mfa.register_webauthn(user, "Key", key.create(options, ORIGIN), CONTEXT)
    token = await world.mfa_token()
    request_options = (
        await world.client.post(
            "/api/v1/auth/login/mfa/webauthn-options", json={"mfa_token": token}
        )
    ).json()
    credential = key.get(request_options, "https://evil.example")
    response = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "credential": credential}
    )
    assert_problem(response, 401, "INVALID_CREDENTIAL")


async def test_a_second_step_needs_exactly_one_of_code_and_credential(world: World) -> None:
    token = await world.mfa_token()
    both = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "code": "1", "credential": {}}
    )
    assert_problem(both, 422, "VALIDATION_ERROR")
    neither = await world.client.post("/api/v1/auth/login/mfa", json={"mfa_token": token})
    assert_problem(neither, 422, "VALIDATION_ERROR")
    garbage = await world.client.post(
        "/api/v1/auth/login/mfa", json={"mfa_token": token, "credential": {"id": 5}}
    )
    assert_problem(garbage, 401, "INVALID_CREDENTIAL")


async def test_webauthn_options_need_a_usable_token(world: World) -> None:
    response = await world.client.post(
        "/api/v1/auth/login/mfa/webauthn-options", json={"mfa_token": "nope"}
    )
    assert_problem(response, 401, "MFA_TOKEN_INVALID")


async def test_a_password_change_between_the_steps_invalidates_the_token(world: World) -> None:
    token = await world.mfa_token()
    user = await account(world.services, world.email)
    async with world.services.uow() as uow:
        await uow.users.update(user.with_password(user.password_hash + "x", world.clock.now()))
        await uow.commit()
    assert_problem(await world.second_step(token, world.code()), 401, "MFA_TOKEN_INVALID")


async def test_a_page_sign_in_of_an_mfa_user_goes_on_to_the_second_step_page(
    world: World,
) -> None:
    page = await page_sign_in(world.client, world.email, STRONG_PASSWORD)
    assert page.status_code == 303
    assert page.headers["location"] == "/login/mfa"
    second = await world.client.get("/login/mfa")
    assert second.status_code == 200 and 'autocomplete="one-time-code"' in second.text


async def test_a_password_reset_neither_removes_nor_bypasses_the_second_factor(
    world: World, smtp: SmtpServer
) -> None:
    assert (await forgot_password(world.client, world.email)).status_code == 202
    message = await smtp.mailbox.wait_for(world.email, "reset your password")
    token = token_in(message, "/reset-password")
    reset = await world.client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": "Another-Horse-8"}
    )
    assert reset.status_code == 200, reset.text
    response = await login(world.client, world.email, "Another-Horse-8")
    assert_problem(response, 403, "MFA_REQUIRED")
    passed = await world.second_step(response.json()["mfa_token"], world.code())
    assert passed.status_code == 200, passed.text
