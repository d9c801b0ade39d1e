"""Log-ins racing a change to the account: no session outlives the change it raced.

These tests run real concurrency: several clients log in in a loop while an administrator
demotes, disables or deletes the account, or its owner resets the password, on SQLite and on
PostgreSQL. The password is hashed at a real cost, so the credential check takes the tens of
milliseconds in which a change can slip between it and the session it opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher as Argon2Hasher
from sqlalchemy import func, select

from bastion.accounts.model import Role, new_user
from bastion.adapters.sql import tables
from bastion.bootstrap import Services
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.secrets import hash_token, new_token
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    bearer,
    login,
    make_settings,
    random_email,
    running_app,
    verify_token,
)

LOGIN_CLIENTS = 4
TRIALS = 3
# Logins are in flight before the change starts, and go on for a while after it answered.
LEAD_IN = 0.1
FOLLOW_THROUGH = 0.08
# The default Argon2 cost: the check of each password takes tens of milliseconds. Logins and
# their failures are many here: no limit may end the race early.
RACE_SETTINGS: dict[str, Any] = {
    "argon2_time_cost": 2,
    "argon2_memory_cost": 19456,
    "rate_limit_per_minute": 1_000_000,
    "user_rate_limit_per_minute": 1_000_000,
    "login_max_failures": 1_000_000,
    "account_max_failures": 1_000_000,
}
NEW_PASSWORD = "Another-Horse-8"


class Change(StrEnum):
    DEMOTION = "demotion"
    DEACTIVATION = "deactivation"
    PASSWORD_RESET = "password_reset"
    DELETION = "deletion"


@dataclass(frozen=True)
class RaceOutcome:
    """What one race left behind once the change had answered and the logins stopped."""

    logins: int
    succeeded: int
    straddling: int  # logins under way when the change answered
    stale_tokens: int  # access tokens that still work and claim the state before the change
    stale_sessions: int  # live sessions of an account that may have none after the change
    server_errors: int


@pytest.fixture
async def race_app(
    database_url: str, smtp: SmtpServer
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = make_settings(database_url, smtp.url, **RACE_SETTINGS)
    async with running_app(settings) as running:
        yield running


async def admin_token(client: httpx.AsyncClient, services: Services) -> str:
    email = random_email("race-admin")
    await services.accounts.create_user(email, STRONG_PASSWORD, Role.ADMIN)
    response = await login(client, email)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def reset_link_token(services: Services, user_id: Any) -> str:
    """A password-reset token for the user, as the forgot-password mail would carry."""
    token = new_token()
    now = services.clock.now()
    async with services.uow() as uow:
        await uow.reset_tokens.add(
            OneTimeToken(hash_token(token), user_id, now, now + timedelta(hours=1))
        )
        await uow.commit()
    return token


async def make_change(
    client: httpx.AsyncClient, admin: str, user_id: str, change: Change, reset_token: str
) -> httpx.Response:
    path = f"/api/v1/admin/users/{user_id}"
    if change is Change.DEMOTION:
        return await client.patch(path, json={"role": "user"}, headers=bearer(admin))
    if change is Change.DEACTIVATION:
        return await client.patch(path, json={"is_active": False}, headers=bearer(admin))
    if change is Change.DELETION:
        return await client.delete(path, headers=bearer(admin))
    return await client.post(
        "/api/v1/auth/reset-password", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )


async def live_sessions(services: Services, user_id: Any) -> int:
    s = tables.sessions.c
    query = select(func.count()).where(s.user_id == user_id, s.revoked_at.is_(None))
    async with services.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def race(
    client: httpx.AsyncClient, services: Services, admin: str, change: Change
) -> RaceOutcome:
    """Log an admin in from several clients at once, make ``change`` to the account in the
    middle, and look at what the logins left."""
    email = random_email(f"race-{change.value}")
    user = await services.accounts.create_user(email, STRONG_PASSWORD, Role.ADMIN)
    reset_token = await reset_link_token(services, user.id)
    answers: list[tuple[httpx.Response, bool]] = []
    changed, stop = asyncio.Event(), asyncio.Event()

    async def keep_logging_in() -> None:
        while not stop.is_set():
            started_before = not changed.is_set()
            response = await login(client, email)
            answers.append((response, started_before and changed.is_set()))

    loops = [asyncio.create_task(keep_logging_in()) for _ in range(LOGIN_CLIENTS)]
    await asyncio.sleep(LEAD_IN)
    change_response = await make_change(client, admin, str(user.id), change, reset_token)
    changed.set()
    await asyncio.sleep(FOLLOW_THROUGH)
    stop.set()
    await asyncio.gather(*loops)
    assert change_response.status_code in (200, 204), change_response.text

    stale_tokens = 0
    for response, _ in answers:
        if response.status_code != 200:
            continue
        verified = await verify_token(client, response.json()["access_token"])
        if verified.status_code == 200:
            still_admin = verified.json()["role"] == Role.ADMIN.value
            stale_tokens += change is not Change.DEMOTION or still_admin
    stale_sessions = 0 if change is Change.DEMOTION else await live_sessions(services, user.id)
    return RaceOutcome(
        logins=len(answers),
        succeeded=sum(response.status_code == 200 for response, _ in answers),
        straddling=sum(straddled for _, straddled in answers),
        stale_tokens=stale_tokens,
        stale_sessions=stale_sessions,
        server_errors=sum(response.status_code >= 500 for response, _ in answers),
    )


@pytest.mark.parametrize("change", list(Change))
async def test_no_login_racing_a_security_change_keeps_a_session_from_before_it(
    race_app: tuple[httpx.AsyncClient, Services], change: Change
) -> None:
    client, services = race_app
    admin = await admin_token(client, services)
    for _ in range(TRIALS):
        outcome = await race(client, services, admin, change)
        assert outcome.server_errors == 0, outcome
        assert outcome.stale_tokens == 0, outcome
        assert outcome.stale_sessions == 0, outcome
        assert outcome.straddling > 0, "no login raced the change"


async def test_a_demoted_admin_who_logs_in_after_the_demotion_gets_a_token_of_the_new_role(
    race_app: tuple[httpx.AsyncClient, Services],
) -> None:
    client, services = race_app
    admin = await admin_token(client, services)
    email = random_email("demoted")
    user = await services.accounts.create_user(email, STRONG_PASSWORD, Role.ADMIN)
    patched = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"role": "user"}, headers=bearer(admin)
    )
    assert patched.status_code == 200

    response = await login(client, email)

    assert response.status_code == 200
    verified = await verify_token(client, response.json()["access_token"])
    assert verified.json()["role"] == "user"


# Users hashed at the old cost are rehashed at the new one (about 0.2 s here) when they log in:
# long enough for an administrator's change to land while the new hash is computed.
OLD_COST = {"time_cost": 1, "memory_cost": 65536, "parallelism": 1}
REHASH_SETTINGS: dict[str, Any] = {
    "argon2_time_cost": 3,
    "argon2_memory_cost": 65536,
    "argon2_parallelism": 1,
}
REHASH_TRIALS = 10


async def user_hashed_at_the_old_cost(services: Services, old_hash: str) -> Any:
    user = new_user(
        random_email("rehash"), old_hash, services.clock.now(), role=Role.ADMIN, verified=True
    )
    async with services.uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def test_a_rehash_on_login_never_undoes_a_change_made_while_it_hashed(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, **REHASH_SETTINGS)
    async with running_app(settings) as (client, services):
        admin = await admin_token(client, services)
        old_hash = await asyncio.to_thread(Argon2Hasher(**OLD_COST).hash, STRONG_PASSWORD)
        rehashed = 0
        for trial in range(REHASH_TRIALS):
            user = await user_hashed_at_the_old_cost(services, old_hash)
            logging_in = asyncio.create_task(login(client, user.email))
            await asyncio.sleep(0.005 + trial * 0.095 / (REHASH_TRIALS - 1))
            patched = await client.patch(
                f"/api/v1/admin/users/{user.id}",
                json={"role": "user", "is_active": False},
                headers=bearer(admin),
            )
            logged_in = await logging_in
            assert patched.status_code == 200, patched.text

            async with services.uow(read_only=True) as uow:
                stored = await uow.users.get(user.id)
            assert stored is not None
            assert (stored.role, stored.is_active) == (Role.USER, False), f"trial {trial}"
            rehashed += stored.password_hash != user.password_hash
            assert logged_in.status_code in (200, 403), logged_in.text
            if logged_in.status_code == 200:
                verified = await verify_token(client, logged_in.json()["access_token"])
                assert verified.status_code == 401, f"trial {trial}: a token outlived the PATCH"
        assert rehashed > 0, "no login rehashed: the race was not run"
