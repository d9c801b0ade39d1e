"""Every way a log-in can end, step by step, over in-memory storage and limits (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import bcrypt
import pytest
from argon2 import PasswordHasher as Argon2Hasher

from bastion.accounts.errors import SecurityStateChanged
from bastion.accounts.model import Role, User
from bastion.audit.model import LoginFailure
from bastion.core.context import RequestContext
from bastion.login.errors import AccountDisabled, EmailNotVerified, InvalidCredentials
from bastion.login.model import Refusal
from bastion.login.password import PasswordCheck
from bastion.passwords.errors import WrongPassword
from bastion.ratelimit.errors import TooManyAttempts
from bastion.sessions.model import Session
from tests.support import STRONG_PASSWORD, random_email
from tests.unit.flows import World, world

WRONG = "Wrong-Password-1"
# Small limits keep each test short; the shapes are the defaults'.
LIMITS = {
    "login_max_failures": 3,
    "login_block_seconds": 60,
    "account_max_failures": 4,
    "account_block_seconds": 90,
}


async def session_of(w: World, session_id: uuid.UUID) -> Session | None:
    async with w.store(read_only=True) as uow:
        return await uow.sessions.get(session_id)


async def test_the_right_password_starts_a_session_and_hands_out_a_device_cookie() -> None:
    async with world() as w:
        user = await w.user()
        logged_in = await w.log_in(user.email.upper())
        session = await session_of(w, logged_in.tokens.session.id)
        assert session is not None and session.user_id == user.id
        assert logged_in.tokens.refresh_token is None
        assert logged_in.device_cookie
        [succeeded] = w.events("login_succeeded", user.id)
        assert succeeded.details["session_id"] == str(session.id)


async def test_remember_me_adds_a_refresh_token() -> None:
    async with world() as w:
        user = await w.user()
        logged_in = await w.log_in(user.email, remember_me=True)
        assert logged_in.tokens.refresh_token


async def test_an_unknown_email_is_refused_like_a_wrong_password() -> None:
    async with world() as w:
        with pytest.raises(InvalidCredentials):
            await w.log_in(random_email("nobody"))
        [failed] = w.events("login_failed")
        assert (failed.user_id, failed.details["reason"]) == (None, "unknown_email")


async def test_a_wrong_password_is_refused_and_recorded_against_the_account() -> None:
    async with world() as w:
        user = await w.user()
        with pytest.raises(InvalidCredentials):
            await w.log_in(user.email, WRONG)
        [failed] = w.events("login_failed", user.id)
        assert failed.details["reason"] == "wrong_password"
        assert w.events("login_succeeded") == []


async def test_an_unverified_account_is_told_so_without_counting_a_failure() -> None:
    async with world(**LIMITS) as w:
        user = await w.user(verified=False)
        for _ in range(LIMITS["login_max_failures"] + 1):
            with pytest.raises(EmailNotVerified):
                await w.log_in(user.email)
        assert {e.details["reason"] for e in w.events("login_failed")} == {"unverified"}
        assert w.events("ip_blocked") == []


async def test_a_disabled_account_is_told_so_after_the_right_password_only() -> None:
    async with world() as w:
        user = await w.user(active=False)
        with pytest.raises(InvalidCredentials):
            await w.log_in(user.email, WRONG)
        with pytest.raises(AccountDisabled):
            await w.log_in(user.email)
        reasons = [e.details["reason"] for e in w.events("login_failed", user.id)]
        assert reasons == ["wrong_password", "disabled"]


async def test_failures_from_one_address_block_it_until_the_block_lifts() -> None:
    async with world(**LIMITS) as w:
        user = await w.user()
        for _ in range(LIMITS["login_max_failures"]):
            with pytest.raises(InvalidCredentials):
                await w.log_in(user.email, WRONG, ip="192.0.2.1")
        with pytest.raises(TooManyAttempts) as blocked:
            await w.log_in(user.email, ip="192.0.2.1")
        assert blocked.value.retry_after == LIMITS["login_block_seconds"]
        assert len(w.events("ip_blocked")) == 1
        assert w.events("login_failed")[-1].details["reason"] == "blocked"

        await w.log_in(user.email, ip="192.0.2.2")  # the owner, elsewhere
        w.clock.advance(LIMITS["login_block_seconds"])
        await w.log_in(user.email, ip="192.0.2.1")


async def test_failures_spread_over_addresses_protect_the_account_and_warn_its_owner() -> None:
    async with world(**LIMITS) as w:
        user = await w.user()
        for n in range(LIMITS["account_max_failures"]):
            with pytest.raises(InvalidCredentials):
                await w.log_in(user.email, WRONG, ip=f"192.0.2.{n + 10}")
        with pytest.raises(TooManyAttempts) as protected:
            await w.log_in(user.email, ip="192.0.2.99")
        assert protected.value.retry_after == LIMITS["account_block_seconds"]
        [engaged] = w.events("account_protected", user.id)
        assert engaged.details["failures"] == LIMITS["account_max_failures"]
        assert w.mail_to(user.email)[-1] == "account_protection"


async def test_a_device_that_signed_in_before_passes_account_protection() -> None:
    async with world(**LIMITS) as w:
        user = await w.user()
        device = (await w.log_in(user.email, ip="192.0.2.200")).device_cookie
        for n in range(LIMITS["account_max_failures"]):
            with pytest.raises(InvalidCredentials):
                await w.log_in(user.email, WRONG, ip=f"192.0.2.{n + 10}")
        with pytest.raises(TooManyAttempts):
            await w.log_in(user.email, ip="192.0.2.99")

        logged_in = await w.log_in(user.email, ip="192.0.2.99", device=device)
        assert logged_in.tokens.session.user_id == user.id


async def test_another_accounts_device_cookie_does_not_pass_account_protection() -> None:
    async with world(**LIMITS) as w:
        user, other = await w.user(), await w.user()
        foreign = (await w.log_in(other.email)).device_cookie
        for n in range(LIMITS["account_max_failures"]):
            with pytest.raises(InvalidCredentials):
                await w.log_in(user.email, WRONG, ip=f"192.0.2.{n + 10}")
        with pytest.raises(TooManyAttempts):
            await w.log_in(user.email, ip="192.0.2.99", device=foreign)


async def test_a_request_over_the_per_ip_limit_is_counted_and_nothing_else() -> None:
    async with world(rate_limit_per_minute=2) as w:
        user = await w.user()
        for _ in range(2):
            await w.log_in(user.email, ip="192.0.2.5")
        usage, admission = await w.services.login.admit(
            user.email, RequestContext(ip="192.0.2.5"), device_cookie=None
        )
        assert not usage.allowed and admission.attempt is None
        assert w.events("login_failed") == []


def outdated_hash(kind: str) -> str:
    """The test password hashed as an imported user's (bcrypt) or at another Argon2 cost."""
    password = STRONG_PASSWORD.encode()
    if kind == "bcrypt":
        return bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode()
    return Argon2Hasher(time_cost=2, memory_cost=1024, parallelism=1).hash(password)


@pytest.mark.parametrize("kind", ["bcrypt", "argon2-at-another-cost"])
async def test_an_outdated_hash_is_replaced_once_the_password_is_known(kind: str) -> None:
    async with world() as w:
        user = await w.user(password_hash=outdated_hash(kind))
        await w.log_in(user.email)
        async with w.store(read_only=True) as uow:
            stored = await uow.users.get(user.id)
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        # Only the hash: the same password is not a new security state.
        assert stored == replace(user, password_hash=stored.password_hash)
        await w.log_in(user.email)  # the new hash opens the account too


async def stored_change(w: World, user: User, change: Callable[[User], User]) -> User:
    async with w.store() as uow:
        current = await uow.users.get_for_update(user.id)
        assert current is not None
        changed = change(current)
        await uow.users.update(changed)
        await uow.commit()
    return changed


async def test_no_session_starts_for_an_account_that_changed_after_its_check() -> None:
    async with world() as w:
        user = await w.user()
        await stored_change(w, user, lambda u: u.with_role(Role.GUEST, w.clock.now()))
        with pytest.raises(SecurityStateChanged):
            await w.services.login.start_session(user, False, RequestContext())
        assert w.store.tables.sessions == {}
        assert w.events("login_succeeded") == []


# The test password hashed at another cost, and another password.
REHASHED = Argon2Hasher(time_cost=2, memory_cost=1024, parallelism=1).hash(STRONG_PASSWORD)
ANOTHER_PASSWORD = Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1).hash(WRONG)
RECHECKS: dict[str, tuple[Callable[[User, datetime], User], LoginFailure | None]] = {
    "demoted": (lambda u, now: u.with_role(Role.GUEST, now), None),
    "rehashed by another log-in": (lambda u, now: replace(u, password_hash=REHASHED), None),
    "new password": (
        lambda u, now: u.with_password(ANOTHER_PASSWORD, now),
        LoginFailure.WRONG_PASSWORD,
    ),
    "disabled": (lambda u, now: u.with_active(False, now), LoginFailure.DISABLED),
    "verification withdrawn": (lambda u, now: u.with_verified(False, now), LoginFailure.UNVERIFIED),
}


@pytest.mark.parametrize("change", RECHECKS.values(), ids=RECHECKS.keys())
async def test_a_recheck_answers_for_the_account_as_it_stands_now(
    change: tuple[Callable[[User, datetime], User], LoginFailure | None],
) -> None:
    alter, refusal = change
    async with world() as w:
        user = await w.user()
        changed = await stored_change(w, user, lambda u: alter(u, w.clock.now()))
        rechecked = await PasswordCheck(w.store, w.services.hasher).recheck(user, STRONG_PASSWORD)
        if refusal is None:
            assert rechecked == changed
        else:
            assert rechecked == Refusal(refusal, user.id)


async def test_a_recheck_of_a_deleted_account_is_an_unknown_email() -> None:
    async with world() as w:
        user = await w.user()
        async with w.store() as uow:
            await uow.users.delete(user.id)
            await uow.commit()
        rechecked = await PasswordCheck(w.store, w.services.hasher).recheck(user, STRONG_PASSWORD)
        assert rechecked == Refusal(LoginFailure.UNKNOWN_EMAIL)


async def confirm(w: World, email: str, password: str, ip: str) -> object:
    context = RequestContext(ip=ip, user_agent="unit tests")
    return await w.services.login.confirm_password(email, password, context)


async def test_confirming_the_right_password_gives_the_state_it_was_checked_against() -> None:
    async with world() as w:
        user = await w.user()
        assert await confirm(w, user.email, STRONG_PASSWORD, "192.0.2.1") == user.security_stamp
        assert w.events("login_failed") == []


async def test_wrong_confirmations_and_wrong_logins_fill_the_same_ip_lockout() -> None:
    async with world(**LIMITS) as w:
        user = await w.user()
        with pytest.raises(InvalidCredentials):
            await w.log_in(user.email, WRONG, ip="192.0.2.1")
        for _ in range(LIMITS["login_max_failures"] - 1):
            with pytest.raises(WrongPassword):
                await confirm(w, user.email, WRONG, "192.0.2.1")
        with pytest.raises(TooManyAttempts):
            await confirm(w, user.email, STRONG_PASSWORD, "192.0.2.1")
        with pytest.raises(TooManyAttempts):
            await w.log_in(user.email, ip="192.0.2.1")
        reasons = [e.details["reason"] for e in w.events("login_failed", user.id)]
        assert reasons == ["wrong_password"] * LIMITS["login_max_failures"] + ["blocked"] * 2
        assert len(w.events("ip_blocked")) == 1


async def test_wrong_confirmations_protect_the_account_and_no_device_is_spared() -> None:
    async with world(**LIMITS) as w:
        user = await w.user()
        for n in range(LIMITS["account_max_failures"]):
            with pytest.raises(WrongPassword):
                await confirm(w, user.email, WRONG, f"192.0.2.{n + 10}")
        with pytest.raises(TooManyAttempts):
            await confirm(w, user.email, STRONG_PASSWORD, "192.0.2.99")
        assert len(w.events("account_protected", user.id)) == 1
        assert w.mail_to(user.email)[-1] == "account_protection"
