from __future__ import annotations

import dataclasses

import bcrypt
import httpx
from argon2 import PasswordHasher as Argon2Hasher

from bastion.accounts.model import new_user
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    bearer,
    login,
    make_settings,
    random_email,
    register,
    register_verified,
    running_app,
)

# The RateLimit-* counters move with every request from the client, whatever the email.
VOLATILE_HEADERS = {
    "x-request-id",
    "date",
    "content-length",
    "ratelimit-remaining",
    "ratelimit-reset",
}


def comparable(response: httpx.Response) -> tuple[int, str, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, response.text, headers


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("known")
    await register_verified(client, smtp.mailbox, email)
    wrong_password = await login(client, email, "Wrong-Password-1")
    unknown_email = await login(client, random_email("unknown"), "Wrong-Password-1")
    assert wrong_password.status_code == 401
    assert wrong_password.json()["code"] == "INVALID_CREDENTIALS"
    assert wrong_password.json()["detail"] == "Invalid email or password"
    assert comparable(wrong_password) == comparable(unknown_email)


async def test_the_email_is_case_insensitive_at_login(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("Mixed")
    await register_verified(client, smtp.mailbox, email)
    assert (await login(client, email.upper())).status_code == 200


async def test_an_unverified_account_is_told_only_after_a_correct_password(
    client: httpx.AsyncClient,
) -> None:
    email = random_email("unverified")
    await register(client, email, STRONG_PASSWORD)
    wrong = await login(client, email, "Wrong-Password-1")
    right = await login(client, email)
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"
    assert right.status_code == 403
    assert right.json()["code"] == "EMAIL_NOT_VERIFIED"
    assert right.json()["detail"] == "Please verify your email"


async def test_a_disabled_account_is_told_only_after_a_correct_password(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = random_email("disabled")
    await register_verified(client, smtp.mailbox, email)
    async with services.uow() as uow:
        user = await uow.users.get_by_email(email)
        assert user is not None
        await uow.users.update(dataclasses.replace(user, is_active=False))
        await uow.commit()
    assert (await login(client, email, "Wrong-Password-1")).json()["code"] == "INVALID_CREDENTIALS"
    response = await login(client, email)
    assert response.status_code == 403
    assert response.json()["code"] == "ACCOUNT_DISABLED"


async def insert_user_with_hash(services: Services, email: str, password_hash: str) -> None:
    user = new_user(email, password_hash, services.clock.now(), verified=True)
    async with services.uow() as uow:
        await uow.users.add(user)
        await uow.commit()


async def stored_hash(services: Services, email: str) -> str:
    async with services.uow(read_only=True) as uow:
        user = await uow.users.get_by_email(email)
    assert user is not None
    return user.password_hash


async def test_an_imported_bcrypt_hash_logs_in_and_is_replaced_by_argon2id(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    email = random_email("imported")
    legacy = bcrypt.hashpw(STRONG_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    await insert_user_with_hash(services, email, legacy.replace("$2b$", "$2y$"))
    assert (await login(client, email, "Wrong-Password-1")).status_code == 401
    assert (await login(client, email)).status_code == 200
    assert (await stored_hash(services, email)).startswith("$argon2id$")
    assert (await login(client, email)).status_code == 200


async def test_an_argon2_hash_with_outdated_parameters_is_upgraded_at_login(
    app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = app
    email = random_email("outdated")
    weak = Argon2Hasher(time_cost=1, memory_cost=512, parallelism=1).hash(STRONG_PASSWORD)
    await insert_user_with_hash(services, email, weak)
    assert (await login(client, email)).status_code == 200
    upgraded = await stored_hash(services, email)
    assert upgraded != weak and "m=1024" in upgraded


async def test_login_rejects_a_password_over_256_characters_before_hashing(
    client: httpx.AsyncClient,
) -> None:
    response = await login(client, random_email(), "A1b" * 100)
    assert response.status_code == 422
    assert "A1bA1b" not in response.text


async def test_the_access_token_expires_after_its_ttl(database_url: str, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    settings = make_settings(database_url, smtp.url, access_token_ttl=300)
    async with running_app(settings, clock=clock) as (client, _):
        email = random_email("ttl")
        await register_verified(client, smtp.mailbox, email)
        body = (await login(client, email)).json()
        assert body["expires_in"] == 300
        clock.advance(301)
        response = await client.get(
            "/api/v1/auth/verify-token", headers=bearer(body["access_token"])
        )
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_EXPIRED"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_remember_me_takes_only_a_json_boolean(client: httpx.AsyncClient) -> None:
    for remember_me in ("yes", "true", 1, 0):
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": random_email(), "password": STRONG_PASSWORD, "remember_me": remember_me},
        )
        assert response.status_code == 422, remember_me
        assert response.json()["errors"][0]["loc"] == ["body", "remember_me"]
