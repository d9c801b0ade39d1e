"""Log-in lockout by IP and account protection with device cookies, on memory and on Redis."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.support import (
    BEHIND_PROXY,
    CLIENT_IP,
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    audit_rows,
    random_email,
    user_id_of,
    verified_user,
)

WRONG = "Wrong-Password-1"
DEVICE_COOKIE = "bastion_device"
VOLATILE_HEADERS = {"x-request-id", "date", "content-length", "ratelimit-remaining"}


async def attempt(
    client: httpx.AsyncClient,
    email: str,
    password: str,
    ip: str,
    device: str | None = None,
) -> httpx.Response:
    headers = {"X-Forwarded-For": ip}
    if device is not None:
        headers["Cookie"] = f"{DEVICE_COOKIE}={device}"
    response = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    client.cookies.clear()  # every attempt carries exactly the cookies it names
    return response


def random_net() -> str:
    """The first three octets of an IPv4 /24 of this test's own: the audit table is shared."""
    return f"100.{secrets.randbelow(256)}.{secrets.randbelow(256)}."


def comparable(response: httpx.Response) -> tuple[int, str, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, response.text, headers


@dataclass(frozen=True)
class Protection:
    """Where a test's apps run: its database, mail server and limiter backend."""

    database_url: str
    smtp: SmtpServer
    limiter_settings: dict[str, Any]

    def app(
        self,
        prefix: str,
        *,
        clock: FrozenClock | None = None,
        client_ip: str = CLIENT_IP,
        **settings: Any,
    ) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, Services, str]]:
        """The app behind the trusted proxy, with one verified user whose address it yields."""
        return app_with_user(
            self.database_url,
            self.smtp,
            prefix,
            clock=clock,
            client_ip=client_ip,
            **{**self.limiter_settings, **BEHIND_PROXY, **settings},
        )


@pytest.fixture
def protection(database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]) -> Protection:
    return Protection(database_url, smtp, limiter_settings)


@pytest.fixture
def net() -> str:
    return random_net()


def assert_too_many_attempts(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "TOO_MANY_ATTEMPTS"
    assert response.json()["detail"] == "Too many attempts. Please try again later"
    assert int(response.headers["Retry-After"]) > 0


async def test_five_failures_from_one_ip_block_it_even_with_the_right_password(
    protection: Protection, net: str
) -> None:
    async with protection.app("lockout") as (client, services, email):
        ip = f"{net}20"
        failures = [await attempt(client, email, WRONG, ip) for _ in range(5)]
        assert [r.status_code for r in failures] == [401] * 5

        blocked = await attempt(client, email, STRONG_PASSWORD, ip)
        assert_too_many_attempts(blocked)
        assert 1790 <= int(blocked.headers["Retry-After"]) <= 1800  # the default 30 minutes

        blocked_events = [e for e in await audit_rows(services, "ip_blocked") if e["ip"] == ip]
        assert len(blocked_events) == 1
        refusals = [
            e
            for e in await audit_rows(services, "login_failed")
            if e["ip"] == ip and e["details"]["reason"] == "blocked"
        ]
        assert len(refusals) == 1 and refusals[0]["user_id"] is not None


async def test_a_parallel_burst_from_one_ip_gets_only_five_guesses(
    protection: Protection, net: str
) -> None:
    async with protection.app("burst") as (client, _, email):
        burst = await asyncio.gather(
            *(attempt(client, email, f"Guess-{n}-Aa1", f"{net}1") for n in range(20))
        )
        statuses = sorted(r.status_code for r in burst)
        assert statuses == [401] * 5 + [429] * 15
        for refused in (r for r in burst if r.status_code == 429):
            assert_too_many_attempts(refused)
        after = await attempt(client, email, STRONG_PASSWORD, f"{net}1")
        assert_too_many_attempts(after)
        assert 1790 <= int(after.headers["Retry-After"]) <= 1800


async def test_a_parallel_spread_attack_gets_at_most_one_guess_past_the_account_limit(
    protection: Protection, net: str, smtp: SmtpServer
) -> None:
    async with protection.app("parallel-spread", account_max_failures=5) as (
        client,
        services,
        email,
    ):
        burst = await asyncio.gather(
            *(attempt(client, email, f"Guess-{n}-Aa1", f"{net}{n}") for n in range(30))
        )
        checked = sum(r.status_code == 401 for r in burst)
        assert 5 <= checked <= 6, "the limit, plus at most the one attempt that engaged the block"
        assert sum(r.status_code == 429 for r in burst) == 30 - checked
        await smtp.mailbox.wait_for(email, "unusual sign-in attempts")
        assert len(await smtp.mailbox.settled(email, expected=2)) == 2, "one warning per engagement"
        user_id = await user_id_of(services, email)
        engaged = [
            e for e in await audit_rows(services, "account_protected") if e["user_id"] == user_id
        ]
        assert len(engaged) == 1


async def test_failures_count_per_ip_so_the_owner_elsewhere_still_logs_in(
    protection: Protection, net: str
) -> None:
    async with protection.app("victim", login_max_failures=3) as (client, _, email):
        for _ in range(3):
            await attempt(client, email, WRONG, f"{net}30")
        assert_too_many_attempts(await attempt(client, email, STRONG_PASSWORD, f"{net}30"))
        assert (await attempt(client, email, STRONG_PASSWORD, f"{net}31")).status_code == 200


async def test_the_ip_block_lifts_after_its_duration(protection: Protection, net: str) -> None:
    clock = FrozenClock()
    async with protection.app(
        "lifted",
        clock=clock,
        login_max_failures=2,
        login_block_seconds=60,
    ) as (client, _, email):
        for _ in range(2):
            await attempt(client, email, WRONG, f"{net}40")
        clock.advance(30)
        blocked = await attempt(client, email, STRONG_PASSWORD, f"{net}40")
        assert_too_many_attempts(blocked)
        assert blocked.headers["Retry-After"] == "30"
        clock.advance(30)
        assert (await attempt(client, email, STRONG_PASSWORD, f"{net}40")).status_code == 200


async def test_a_spread_attack_is_refused_before_attempt_100_but_the_owner_device_logs_in(
    postgresql_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    net = random_net()
    protection = Protection(postgresql_url, smtp, limiter_settings)
    async with protection.app("spread") as (client, services, email):
        owner = await attempt(client, email, STRONG_PASSWORD, f"{net}200")
        assert owner.status_code == 200
        device = owner.cookies[DEVICE_COOKIE]

        # 150 failures, 4 per IP from 38 IPs: the per-IP rule (5) never trips.
        ips = [f"{net}{100 + n // 4}" for n in range(150)]
        statuses = [(await attempt(client, email, WRONG, ip)).status_code for ip in ips]
        assert statuses[:50] == [401] * 50
        assert set(statuses[50:]) == {429}, "refused from the 51st consecutive failure on"

        stranger = await attempt(client, email, STRONG_PASSWORD, f"{net}201")
        assert_too_many_attempts(stranger)
        assert 890 <= int(stranger.headers["Retry-After"]) <= 900
        from_device = await attempt(client, email, STRONG_PASSWORD, f"{net}202", device)
        assert from_device.status_code == 200

        warning = await smtp.mailbox.wait_for(email, "unusual sign-in attempts")
        assert "reset" in str(warning.get_body(preferencelist=("plain",))).lower()
        assert len(await smtp.mailbox.settled(email, expected=2)) == 2, "one warning per engagement"
        user_id = await user_id_of(services, email)
        protected = [
            e for e in await audit_rows(services, "account_protected") if e["user_id"] == user_id
        ]
        assert len(protected) == 1
        assert protected[0]["ip"] == ips[49]


async def test_a_success_resets_the_account_count(protection: Protection, net: str) -> None:
    async with protection.app("reset-count", account_max_failures=3) as (client, _, email):
        for n in range(2):
            await attempt(client, email, WRONG, f"{net}{50 + n}")
        assert (await attempt(client, email, STRONG_PASSWORD, f"{net}52")).status_code == 200
        for n in range(2):
            failed = await attempt(client, email, WRONG, f"{net}{53 + n}")
            assert failed.status_code == 401
        await attempt(client, email, WRONG, f"{net}55")
        assert_too_many_attempts(await attempt(client, email, STRONG_PASSWORD, f"{net}56"))


async def test_protected_unknown_and_existing_accounts_get_identical_answers(
    protection: Protection, net: str
) -> None:
    async with protection.app("known", clock=FrozenClock(), account_max_failures=2) as (
        client,
        services,
        known,
    ):
        unknown = random_email("unknown")
        answers = {}
        for email, octet in ((known, 60), (unknown, 70)):
            failures = [await attempt(client, email, WRONG, f"{net}{octet + n}") for n in (0, 1)]
            assert [r.status_code for r in failures] == [401, 401]
            answers[email] = await attempt(client, email, WRONG, f"{net}{octet + 2}")
        assert_too_many_attempts(answers[known])
        assert comparable(answers[known]) == comparable(answers[unknown])
        assert DEVICE_COOKIE not in answers[known].headers.get("set-cookie", "")


async def test_only_a_valid_device_cookie_for_that_account_bypasses_protection(
    protection: Protection, net: str, smtp: SmtpServer
) -> None:
    async with protection.app("victim", account_max_failures=2) as (client, _, victim):
        attacker = await verified_user(client, smtp.mailbox, "attacker")
        attacker_device = (
            await attempt(client, attacker, STRONG_PASSWORD, "203.0.113.50")
        ).cookies[DEVICE_COOKIE]
        for n in range(2):
            await attempt(client, victim, WRONG, f"{net}{80 + n}")

        own_cookie = await attempt(client, victim, STRONG_PASSWORD, "203.0.113.50", attacker_device)
        assert_too_many_attempts(own_cookie)
        user_id, _, mac = attacker_device.rpartition(".")
        forged = await attempt(
            client, victim, STRONG_PASSWORD, "203.0.113.50", f"{user_id}.{mac[::-1]}"
        )
        assert_too_many_attempts(forged)


async def test_the_device_cookie_is_http_only_and_scoped_to_login(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "cookie") as (client, _, email):
        response = await attempt(client, email, STRONG_PASSWORD, CLIENT_IP)
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(DEVICE_COOKIE)
        )
        attributes = cookie.lower()
        assert "httponly" in attributes and "secure" in attributes
        assert "path=/api/v1/auth/login" in attributes and "samesite=strict" in attributes


async def test_password_reset_still_works_while_the_account_is_protected(
    protection: Protection, net: str, smtp: SmtpServer
) -> None:
    async with protection.app("reset-protected", account_max_failures=2) as (client, _, email):
        for n in range(3):
            await attempt(client, email, WRONG, f"{net}{90 + n}")
        forgot = await client.post("/api/v1/auth/forgot-password", json={"email": email})
        assert forgot.status_code == 202
        await smtp.mailbox.wait_for(email, "reset your password")


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    protection: Protection, net: str
) -> None:
    async with protection.app(
        "spoof",
        client_ip=f"{net}99",
        trusted_proxies=[],  # no trusted proxies
    ) as (client, services, email):
        for n in range(5):
            assert (await attempt(client, email, WRONG, f"{net}{n}")).status_code == 401
        assert_too_many_attempts(await attempt(client, email, STRONG_PASSWORD, f"{net}77"))
        recorded = {e["ip"] for e in await audit_rows(services, "ip_blocked")}
        assert f"{net}99" in recorded
        assert not recorded & {f"{net}{n}" for n in range(5)}


async def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_counted(
    protection: Protection, net: str
) -> None:
    async with protection.app("chain", trusted_proxies=[f"{CLIENT_IP}/32", "10.0.0.0/8"]) as (
        client,
        _,
        email,
    ):
        # The attacker controls the left of the chain; our proxies append the real address.
        for n in range(5):
            chain = f"{net}{n}, {net}120, 10.0.0.7"
            assert (await attempt(client, email, WRONG, chain)).status_code == 401
        blocked = await attempt(client, email, STRONG_PASSWORD, f"6.6.6.6, {net}120, 10.0.0.7")
        assert_too_many_attempts(blocked)
        other = await attempt(client, email, STRONG_PASSWORD, f"{net}121, 10.0.0.7")
        assert other.status_code == 200


async def change_password(
    client: httpx.AsyncClient, access: str, current: str, ip: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": current, "new_password": "Another-Horse-8"},
        headers={"Authorization": f"Bearer {access}", "X-Forwarded-For": ip},
    )


async def signed_in(client: httpx.AsyncClient, email: str, ip: str) -> str:
    response = await attempt(client, email, STRONG_PASSWORD, ip)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_wrong_current_passwords_count_towards_the_ip_lockout_like_failed_logins(
    protection: Protection, net: str
) -> None:
    async with protection.app("oracle", login_max_failures=3) as (client, services, email):
        stolen = await signed_in(client, email, f"{net}51")
        ip = f"{net}50"
        guesses = [
            await change_password(client, stolen, "Guess-1-Aa1", ip),
            await attempt(client, email, "Guess-2-Aa1", ip),
            await change_password(client, stolen, "Guess-3-Aa1", ip),
        ]
        assert [r.json()["code"] for r in guesses] == ["INVALID_CREDENTIALS"] * 3

        assert_too_many_attempts(await change_password(client, stolen, STRONG_PASSWORD, ip))
        assert_too_many_attempts(await attempt(client, email, STRONG_PASSWORD, ip))
        assert (await attempt(client, email, STRONG_PASSWORD, f"{net}52")).status_code == 200
        failed = [e for e in await audit_rows(services, "login_failed") if e["ip"] == ip]
        reasons = [e["details"]["reason"] for e in failed]
        assert reasons == ["wrong_password"] * 3 + ["blocked"] * 2
        assert len([e for e in await audit_rows(services, "ip_blocked") if e["ip"] == ip]) == 1


async def test_wrong_current_passwords_from_many_addresses_protect_the_account_and_warn_its_owner(
    protection: Protection, net: str, smtp: SmtpServer
) -> None:
    async with protection.app("oracle-spread", account_max_failures=4) as (
        client,
        services,
        email,
    ):
        stolen = await signed_in(client, email, f"{net}60")
        for n in range(4):
            wrong = await change_password(client, stolen, f"Guess-{n}-Aa1", f"{net}{70 + n}")
            assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_CREDENTIALS"

        await smtp.mailbox.wait_for(email, "unusual sign-in attempts")
        right = await change_password(client, stolen, STRONG_PASSWORD, f"{net}80")
        assert_too_many_attempts(right)
        user_id = await user_id_of(services, email)
        protected = [
            e for e in await audit_rows(services, "account_protected") if e["user_id"] == user_id
        ]
        assert len(protected) == 1
        changed = [
            e for e in await audit_rows(services, "password_changed") if e["user_id"] == user_id
        ]
        assert changed == []
