"""Security headers, CORS, and secrets kept out of logs and the audit trail."""

from __future__ import annotations

import secrets as random_names
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.accounts.model import Role
from bastion.adapters.sql import tables
from bastion.core.secrets import hash_token
from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.support import (
    BEHIND_PROXY,
    CLIENT_IP,
    PUBLIC_URL,
    STRONG_PASSWORD,
    SmtpServer,
    access_token,
    audit_events_of,
    bearer,
    link_in,
    login,
    make_settings,
    random_email,
    refresh,
    register,
    remembered_login,
    running_app,
)

APP_ORIGIN = "https://app.example.com"


def assert_base_headers(headers: httpx.Headers) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["strict-transport-security"].startswith("max-age=")


async def test_api_responses_carry_the_security_headers_and_are_never_cached(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(database_url, smtp.url)) as (client, _):
        refused = await client.get("/api/v1/auth/me")
        assert_base_headers(refused.headers)
        assert refused.headers["cache-control"] == "no-store"

        token = await access_token(client, smtp.mailbox)
        me = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert_base_headers(me.headers)
        assert me.headers["cache-control"] == "no-store"


async def test_a_response_carrying_a_token_is_never_cached(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(database_url, smtp.url)) as (client, _):
        email = random_email("nocache")
        await access_token(client, smtp.mailbox, email)
        logged_in = await login(client, email, remember_me=True)
        assert logged_in.status_code == 200
        assert logged_in.headers["cache-control"] == "no-store"


async def test_html_pages_get_a_strict_content_security_policy(
    database_url: str, smtp: SmtpServer
) -> None:
    async with running_app(make_settings(database_url, smtp.url)) as (client, _):
        page = await client.get("/login")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        # Pages name their origin (never a path) so that browsers' form posts carry an Origin.
        assert page.headers["referrer-policy"] == "strict-origin"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


async def test_no_hsts_is_sent_when_the_public_url_is_plain_http(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, public_url="http://127.0.0.1:8000")
    async with running_app(settings) as (client, _):
        response = await client.get("/api/v1/auth/me")
        assert "strict-transport-security" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }


async def test_cors_answers_an_allowed_origin_with_credentials(
    database_url: str, smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp.url, allowed_origins=[APP_ORIGIN])
    async with running_app(settings) as (client, _):
        answer = await client.options("/api/v1/auth/login", headers=preflight(APP_ORIGIN))
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert answer.headers["x-content-type-options"] == "nosniff"

        actual = await client.post(
            "/api/v1/auth/login",
            json={"email": random_email(), "password": "Wrong-Password-1"},
            headers={"Origin": APP_ORIGIN},
        )
        assert actual.headers["access-control-allow-origin"] == APP_ORIGIN
        exposed = actual.headers["access-control-expose-headers"].lower()
        assert "retry-after" in exposed and "ratelimit-remaining" in exposed


@pytest.mark.parametrize("allowed", [[APP_ORIGIN], []])
async def test_cors_ignores_other_origins(
    database_url: str, smtp: SmtpServer, allowed: list[str]
) -> None:
    settings = make_settings(database_url, smtp.url, allowed_origins=allowed)
    async with running_app(settings) as (client, _):
        evil = "https://evil.example.com"
        answer = await client.options("/api/v1/auth/login", headers=preflight(evil))
        assert "access-control-allow-origin" not in answer.headers
        actual = await client.get("/.well-known/jwks.json", headers={"Origin": evil})
        assert "access-control-allow-origin" not in actual.headers


async def test_no_secret_reaches_the_logs_or_the_audit_trail(
    database_url: str, smtp: SmtpServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """After a full journey and a database error, search everything written for every secret
    they used."""
    secrets: list[str] = []
    reset_password, changed_password = "Reset-Horse-8", "Changed-Horse-9"
    secrets += [STRONG_PASSWORD, "Wrong-Password-1", reset_password, changed_password]
    async with running_app(make_settings(database_url, smtp.url)) as (client, services):
        email = random_email("secrets")
        assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
        message = await smtp.mailbox.wait_for(email, "confirm your email")
        verify_link = link_in(message, "/verify-email")
        verify_token = verify_link.split("token=", 1)[1]
        secrets += [verify_link, verify_token]
        assert (await client.post(f"/api/v1/auth/verify-email/{verify_token}")).status_code == 200

        assert (await login(client, email, "Wrong-Password-1")).status_code == 401
        access, refresh_token = await remembered_login(client, email)
        secrets += [access, refresh_token]
        rotated = await refresh(client, refresh_token)
        assert rotated.status_code == 200
        secrets.append(rotated.json()["access_token"])
        secrets += [
            c.split(";")[0].split("=", 1)[1] for c in rotated.headers.get_list("set-cookie")
        ]

        forgot = await client.post("/api/v1/auth/forgot-password", json={"email": email})
        assert forgot.status_code == 202
        reset_mail = await smtp.mailbox.wait_for(email, "reset your password")
        reset_link = link_in(reset_mail, "/reset-password")
        reset_token = reset_link.split("token=", 1)[1]
        secrets += [reset_link, reset_token]
        reset = await client.post(
            "/api/v1/auth/reset-password",
            json={"token": reset_token, "new_password": reset_password},
        )
        assert reset.status_code == 200, reset.text

        logged_in = await login(client, email, reset_password)
        assert logged_in.status_code == 200
        new_access = logged_in.json()["access_token"]
        secrets += [new_access, logged_in.cookies["bastion_device"]]
        changed = await client.post(
            "/api/v1/auth/change-password",
            json={"current_password": reset_password, "new_password": changed_password},
            headers=bearer(new_access),
        )
        assert changed.status_code == 204, changed.text
        events = await client.get("/api/v1/auth/me/security-events", headers=bearer(new_access))
        assert events.status_code == 200

        # Second factors over HTTP: the TOTP secret, its URI, the mfa_token, codes (a wrong
        # recovery code, a used one, a regenerated set) and a passkey's assertion.
        auth = bearer(new_access)
        started = await client.post("/api/v1/auth/mfa/totp", json={}, headers=auth)
        assert started.status_code == 201, started.text
        secret = started.json()["secret"]
        totp = pyotp.TOTP(secret)
        confirmed = await client.post(
            f"/api/v1/auth/mfa/totp/{started.json()['factor_id']}/confirm",
            json={"code": totp.now()},
            headers=auth,
        )
        assert confirmed.status_code == 200, confirmed.text
        recovery_codes = confirmed.json()["recovery_codes"]
        aal2_access = confirmed.json()["access_token"]
        secrets += [secret, started.json()["otpauth_uri"], aal2_access, *recovery_codes]
        first = await login(client, email, changed_password)
        assert first.status_code == 403, first.text
        mfa_token = first.json()["mfa_token"]
        wrong = await client.post(
            "/api/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": "zzzz-zzzz-zzzz"}
        )
        assert wrong.status_code == 401
        passed = await client.post(
            "/api/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": recovery_codes[0]}
        )
        assert passed.status_code == 200, passed.text
        secrets += [mfa_token, "zzzz-zzzz-zzzz", passed.json()["access_token"]]
        regenerated = await client.post(
            "/api/v1/auth/mfa/recovery-codes", headers=bearer(aal2_access)
        )
        assert regenerated.status_code == 200, regenerated.text
        secrets += regenerated.json()["recovery_codes"]
        key = SoftwareAuthenticator()
        options = await client.post(
            "/api/v1/auth/mfa/webauthn/options", json={"passkey": True}, headers=bearer(aal2_access)
        )
        created = key.create(options.json(), PUBLIC_URL)
        registered = await client.post(
            "/api/v1/auth/mfa/webauthn", json={"credential": created}, headers=bearer(aal2_access)
        )
        assert registered.status_code == 201, registered.text
        assertion = key.get((await client.post("/api/v1/auth/passkey/options")).json(), PUBLIC_URL)
        by_passkey = await client.post("/api/v1/auth/passkey/login", json={"credential": assertion})
        assert by_passkey.status_code == 200, by_passkey.text
        secrets += [
            created["response"]["attestationObject"],
            assertion["response"]["signature"],
            assertion["response"]["clientDataJSON"],
            options.json()["challenge"],
        ]
        # (Six-digit TOTP codes are not searched for: digits that short turn up by chance.)

        # The owner's and the admin's links: a change of email, an invitation, an admin's reset.
        owner = random_email("secrets-owner")
        await services.accounts.create_user(owner, STRONG_PASSWORD, Role.USER)
        recent = (await login(client, owner)).json()["access_token"]
        secrets.append(recent)
        new_email = random_email("secrets-moved")
        asked = await client.post(
            "/api/v1/auth/me/email", json={"new_email": new_email}, headers=bearer(recent)
        )
        assert asked.status_code == 202
        change_link = link_in(await smtp.mailbox.wait_for(new_email, "new email"), "/confirm-email")
        change_token = change_link.split("token=", 1)[1]
        secrets += [change_link, change_token]
        opened = await client.get(change_link)
        secrets.append(opened.headers["set-cookie"].split(";")[0].split("=", 1)[1])
        confirmed = await client.post(f"/api/v1/auth/me/email/confirm/{change_token}")
        assert confirmed.status_code == 200
        moved = (await login(client, new_email)).json()["access_token"]
        secrets.append(moved)
        exported = await client.get("/api/v1/auth/me/export", headers=bearer(moved))
        assert exported.status_code == 200
        admin_email = random_email("secrets-admin")
        await services.accounts.create_user(admin_email, STRONG_PASSWORD, Role.ADMIN)
        admin = (await login(client, admin_email)).json()["access_token"]
        secrets.append(admin)
        invited = random_email("secrets-invited")
        made = await client.post(
            "/api/v1/admin/users", json={"email": invited, "invite": True}, headers=bearer(admin)
        )
        assert made.status_code == 201
        invite_link = link_in(await smtp.mailbox.wait_for(invited, "invited"), "/accept-invite")
        invite_token = invite_link.split("token=", 1)[1]
        secrets += [invite_link, invite_token, "Invited-Horse-5"]
        accepted = await client.post(
            "/api/v1/auth/accept-invite",
            json={"token": invite_token, "password": "Invited-Horse-5"},
        )
        assert accepted.status_code == 200
        sent = await client.post(
            f"/api/v1/admin/users/{made.json()['id']}/password-reset", headers=bearer(admin)
        )
        assert sent.status_code == 202
        admin_reset = link_in(await smtp.mailbox.wait_for(invited, "reset"), "/reset-password")
        secrets += [admin_reset, admin_reset.split("token=", 1)[1]]
        invited_access = (await login(client, invited, "Invited-Horse-5")).json()["access_token"]
        secrets.append(invited_access)
        gone = await client.delete("/api/v1/auth/me", headers=bearer(invited_access))
        assert gone.status_code == 204

        async with services.engine.connect() as connection:
            rows = (await connection.execute(select(tables.audit_events))).mappings().all()

        # A statement the database refuses: its error carries the sign-up's bound parameters
        # (the address, the Argon2 hash, the verification token's hash) unless they are hidden.
        refused = random_email("refused")
        async with database_refusing_sign_up_of(services.engine, refused):
            crashed = await register(client, refused, STRONG_PASSWORD)
        assert crashed.status_code == 500
        secrets += [refused, "$argon2"]

    logs = "".join(capfd.readouterr())
    assert "request.crashed" in logs, "the database error was logged"
    assert "/api/v1/auth/reset-password" in logs, "the journey's log lines were captured"
    trail = "\n".join(str(dict(row)) for row in rows) + events.text
    secrets += [hash_token(secret) for secret in list(secrets)]
    for secret in secrets:
        assert secret not in logs, f"a secret reached the logs: {secret[:6]}…"
        assert secret not in trail, f"a secret reached the audit trail: {secret[:6]}…"
    for path in ("/reset-password", "/confirm-email", "/accept-invite"):
        assert f"{PUBLIC_URL}{path}?token=" not in logs + trail


@pytest.mark.parametrize(
    "forwarded_for",
    ["fe80::1%" + "a" * 100, "fe80::1%eth0", "198.51.100.7" * 10, "<script>", "1.2.3.4:80"],
    ids=["long-zone-id", "zone-id", "over-long", "junk", "with-port"],
)
async def test_a_forwarded_for_entry_that_is_no_plain_address_leaves_the_peer_as_the_client(
    database_url: str, smtp: SmtpServer, forwarded_for: str
) -> None:
    """The trusted proxy's garbled entry is not a client address: the peer is, as stored."""
    settings = make_settings(database_url, smtp.url, **BEHIND_PROXY)
    async with running_app(settings) as (client, services):
        email = random_email("forwarded")
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": STRONG_PASSWORD},
            headers={"X-Forwarded-For": forwarded_for},
        )
        assert response.status_code == 202, response.text
        [registered] = await audit_events_of(services, email, "registered")
        assert registered.ip == CLIENT_IP


@asynccontextmanager
async def database_refusing_sign_up_of(engine: AsyncEngine, email: str) -> AsyncIterator[None]:
    """A trigger that makes the database raise an error when a user with ``email`` is inserted."""
    name = f"refuse_{random_names.token_hex(6)}"
    if engine.dialect.name == "postgresql":
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON users FOR EACH ROW "
            f"WHEN (NEW.email = '{email}') EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON users", f"DROP FUNCTION {name}()"]
    else:
        create = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON users WHEN NEW.email = '{email}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    async with engine.begin() as connection:
        for statement in create:
            await connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)
