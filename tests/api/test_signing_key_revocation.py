"""Withdrawing a leaked signing key, and the admin's list of keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.tokens.errors import SigningKeyNotFound
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    kid_of,
    login,
    make_settings,
    random_email,
    running_app,
    verify_token,
)

KEYS = "/api/v1/admin/signing-keys"


@pytest.fixture
async def own_keys(
    fresh_database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """An app on a database of its own: revoking its signer touches no other test."""
    async with running_app(make_settings(fresh_database_url, smtp.url)) as running:
        yield running


async def signed_in(client: httpx.AsyncClient, services: Services, role: Role) -> str:
    email = random_email(f"keys-{role.value}")
    await services.accounts.create_user(email, STRONG_PASSWORD, role)
    token: str = (await login(client, email)).json()["access_token"]
    return token


async def test_revoking_the_signer_makes_a_new_signer_and_refuses_the_old_keys_tokens(
    own_keys: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = own_keys
    admin = await signed_in(client, services, Role.ADMIN)
    user = await signed_in(client, services, Role.USER)
    kid = kid_of(user)
    assert (await verify_token(client, user)).status_code == 200

    replacement = await services.tokens.revoke(kid)
    assert replacement is not None and replacement.kid != kid
    assert_problem(await verify_token(client, user), 401, "INVALID_TOKEN")
    assert_problem(await client.get("/api/v1/auth/me", headers=bearer(user)), 401, "INVALID_TOKEN")
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert kid not in {key["kid"] for key in jwks["keys"]}

    assert_problem(await client.get(KEYS, headers=bearer(admin)), 401, "INVALID_TOKEN")
    admin = await signed_in(client, services, Role.ADMIN)
    assert kid_of(admin) == replacement.kid
    listed = await client.get(KEYS, headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    by_kid = {item["kid"]: item for item in listed.json()}
    assert by_kid[kid]["state"] == "revoked" and by_kid[kid]["published_until"]
    assert by_kid[replacement.kid]["state"] == "signer"
    assert by_kid[replacement.kid]["published_until"] is None
    assert {item["alg"] for item in listed.json()} == {"EdDSA"}
    assert set(by_kid[kid]) == {"kid", "alg", "created_at", "state", "published_until"}

    with pytest.raises(SigningKeyNotFound):
        await services.tokens.revoke(kid)
    with pytest.raises(SigningKeyNotFound):
        await services.tokens.revoke("no-such-kid")


async def test_revoking_a_verifying_key_keeps_the_signer(
    own_keys: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = own_keys
    old_token = await signed_in(client, services, Role.USER)
    old_kid = kid_of(old_token)
    signer = await services.tokens.rotate()
    new_token = await signed_in(client, services, Role.USER)
    assert kid_of(new_token) == signer.kid
    assert await services.tokens.revoke(old_kid) is None
    assert_problem(await verify_token(client, old_token), 401, "INVALID_TOKEN")
    assert (await verify_token(client, new_token)).status_code == 200


async def test_only_admins_list_the_signing_keys(app: tuple[httpx.AsyncClient, Services]) -> None:
    client, services = app
    for role in (Role.MANAGER, Role.USER):
        token = await signed_in(client, services, role)
        assert_problem(await client.get(KEYS, headers=bearer(token)), 403, "FORBIDDEN")
    assert_problem(await client.get(KEYS), 401, "INVALID_TOKEN")
