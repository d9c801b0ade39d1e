"""Endpoint rate limits: 429 RATE_LIMITED with Retry-After, RateLimit-* headers, and the
endpoints that are never limited. On memory and on Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bastion.core.clock import FrozenClock
from tests.support import (
    BEHIND_PROXY,
    STRONG_PASSWORD,
    Mailbox,
    SmtpServer,
    access_token,
    assert_problem,
    bearer,
    forgot_password,
    look_alike,
    make_settings,
    random_email,
    register,
    running_app,
)


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "RATE_LIMITED"
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == response.headers["Retry-After"]


async def resend(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/api/v1/auth/verify-email/resend", json={"email": email})


async def register_from(client: httpx.AsyncClient, ip: str) -> httpx.Response:
    """Sign up a new address from ``ip``, which the trusted proxy forwards."""
    return await client.post(
        "/api/v1/auth/register",
        json={"email": random_email("burst"), "password": STRONG_PASSWORD},
        headers={"X-Forwarded-For": ip},
    )


@asynccontextmanager
async def limited_app(
    database_url: str,
    smtp: SmtpServer,
    limiter_settings: dict[str, Any],
    *,
    clock: FrozenClock | None = None,
    **settings: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app's client, its limits kept on this limiter backend."""
    overrides: dict[str, Any] = {} if clock is None else {"clock": clock}
    app_settings = make_settings(database_url, smtp.url, **limiter_settings, **settings)
    async with running_app(app_settings, **overrides) as (client, _):
        yield client


async def test_registration_is_limited_to_five_per_ip_and_hour(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(database_url, smtp, limiter_settings, **BEHIND_PROXY) as client:
        accepted = [await register_from(client, "198.51.100.1") for _ in range(5)]
        assert [r.status_code for r in accepted] == [202] * 5
        assert [r.headers["RateLimit-Remaining"] for r in accepted] == ["4", "3", "2", "1", "0"]
        assert accepted[0].headers["RateLimit-Limit"] == "5"

        refused = await register_from(client, "198.51.100.1")
        assert_rate_limited(refused)
        assert 3590 <= int(refused.headers["Retry-After"]) <= 3600

        elsewhere = await register_from(client, "198.51.100.2")
        assert elsewhere.status_code == 202


async def test_forgot_password_is_limited_per_email_whether_or_not_the_account_exists(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(database_url, smtp, limiter_settings) as client:
        existing = random_email("forgot")
        assert (await register(client, existing, STRONG_PASSWORD)).status_code == 202
        for email in (existing, random_email("nobody")):
            answers = [await forgot_password(client, email) for _ in range(3)]
            assert [r.status_code for r in answers] == [202] * 3
            assert_rate_limited(await forgot_password(client, email.upper()))
        assert (await forgot_password(client, random_email("other"))).status_code == 202


async def test_verification_resend_is_limited_per_email(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(database_url, smtp, limiter_settings) as client:
        email = random_email("resend")
        assert [(await resend(client, email)).status_code for _ in range(3)] == [202] * 3
        assert_rate_limited(await resend(client, email))
        assert (await resend(client, random_email("resend"))).status_code == 202


async def test_other_unauthenticated_endpoints_share_a_limit_per_ip(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(
        database_url, smtp, limiter_settings, rate_limit_per_minute=3, **BEHIND_PROXY
    ) as client:
        here = {"X-Forwarded-For": "198.51.100.3"}
        refresh = await client.post("/api/v1/auth/refresh", headers=here)
        assert refresh.status_code == 401
        assert refresh.headers["RateLimit-Limit"] == "3"
        assert refresh.headers["RateLimit-Remaining"] == "2"
        bad_link = await client.post("/api/v1/auth/verify-email/not-a-token", headers=here)
        assert bad_link.status_code == 400
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": random_email(), "password": "Wrong-Password-1"},
            headers=here,
        )
        assert login.status_code == 401
        assert_rate_limited(
            await client.post(
                "/api/v1/auth/reset-password",
                json={"token": "x", "new_password": STRONG_PASSWORD},
                headers=here,
            )
        )
        other = await client.post(
            "/api/v1/auth/refresh", headers={"X-Forwarded-For": "198.51.100.4"}
        )
        assert other.status_code == 401


async def test_authenticated_endpoints_are_limited_per_user(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(
        database_url, smtp, limiter_settings, user_rate_limit_per_minute=3
    ) as client:
        first = await access_token(client, smtp.mailbox)
        second = await access_token(client, smtp.mailbox)
        me = [await client.get("/api/v1/auth/me", headers=bearer(first)) for _ in range(2)]
        assert [r.status_code for r in me] == [200, 200]
        assert me[0].headers["RateLimit-Limit"] == "3"
        sessions = await client.get("/api/v1/auth/sessions", headers=bearer(first))
        assert sessions.status_code == 200
        assert_rate_limited(await client.get("/api/v1/auth/me", headers=bearer(first)))
        assert (await client.get("/api/v1/auth/me", headers=bearer(second))).status_code == 200


async def test_token_verification_jwks_health_and_metrics_are_never_limited(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    async with limited_app(
        database_url, smtp, limiter_settings, rate_limit_per_minute=5, user_rate_limit_per_minute=1
    ) as client:
        token = await access_token(client, smtp.mailbox)
        for _ in range(5):
            verified = await client.get("/api/v1/auth/verify-token", headers=bearer(token))
            assert verified.status_code == 200
            assert "RateLimit-Limit" not in verified.headers
            for path in ("/.well-known/jwks.json", "/healthz", "/readyz", "/metrics"):
                response = await client.get(path)
                assert response.status_code == 200, path
                assert "RateLimit-Limit" not in response.headers


async def test_a_limit_frees_up_as_its_window_slides(
    database_url: str, smtp: SmtpServer, limiter_settings: dict[str, Any]
) -> None:
    clock = FrozenClock()
    async with limited_app(database_url, smtp, limiter_settings, clock=clock) as client:
        email = random_email("slide")
        await forgot_password(client, email)
        clock.advance(1200)
        await forgot_password(client, email)
        await forgot_password(client, email)
        refused = await forgot_password(client, email)
        assert_rate_limited(refused)
        assert refused.headers["Retry-After"] == "2400"
        clock.advance(2400)
        assert (await forgot_password(client, email)).status_code == 202
        assert_rate_limited(await forgot_password(client, email))


def spellings(email: str) -> list[str]:
    """One address written the ways an attacker tried, each hoping for a quota of its own: the
    ones Bastion accepts are all this address, the others (a display name, a quoted local part)
    are refused."""
    local, _, domain = email.partition("@")
    return [
        email,
        email.upper(),
        look_alike(email),
        f"  {email} ",
        f"{local}@{domain.upper()}",
        f"x <{email}>",
        f'"{local}"@{domain}',
        f"{local.upper()}@{domain}",
    ]


async def delivered(mailbox: Mailbox, to: str, subject: str, expected: int) -> int:
    """How many messages to ``to`` with ``subject`` the SMTP server received: once ``expected``
    have arrived (or 10 s passed), and then long enough for the outbox to deliver any more."""
    deadline = time.monotonic() + 10

    def count() -> int:
        return sum(subject in str(message["Subject"]) for message in mailbox.received(to))

    while count() < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return count()


async def test_spellings_of_one_address_share_its_quota_of_reset_and_verification_mail(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(database_url, smtp.url)) as (client, _):
        email = random_email("burst")
        assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
        for spelt in spellings(email):
            for ask in (forgot_password, resend):
                assert (await ask(client, spelt)).status_code in {202, 422, 429}

        assert await delivered(smtp.mailbox, email, "Reset your password", 3) == 3
        # One from the sign-up, three resent.
        assert await delivered(smtp.mailbox, email, "Confirm your email", 1 + 3) == 1 + 3


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/forgot-password", "/api/v1/auth/verify-email/resend"]
)
async def test_a_refused_request_leaves_the_address_quota_whole(
    database_url: str, smtp: SmtpServer, path: str
) -> None:
    async with running_app(make_settings(database_url, smtp.url)) as (client, _):
        email = random_email("victim")
        for extra in ({"admin": True}, {"password": STRONG_PASSWORD}, {"token": "x"}):
            refused = await client.post(path, json={"email": email, **extra})
            assert_problem(refused, 422, "VALIDATION_ERROR")
        answers = [await client.post(path, json={"email": email}) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [202] * 3
        assert answers[0].headers["RateLimit-Remaining"] == "2"
