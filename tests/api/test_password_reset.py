"""Forgotten passwords: the mailed link, the reset, what it ends, and the page the link opens."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from structlog.testing import capture_logs

from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.support import (
    PUBLIC_URL,
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    assert_problem,
    bearer,
    forgot_password,
    link_in,
    login,
    random_email,
    refresh,
    register,
    register_verified,
    remembered_user,
    token_in,
    verified_user,
    verify_token,
)

NEW_PASSWORD = "Another-Horse-8"
VOLATILE_HEADERS = {"x-request-id", "date", "content-length"}


async def reset(
    client: httpx.AsyncClient, token: str, new_password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": new_password}
    )


async def reset_tokens(smtp: SmtpServer, email: str, count: int = 1) -> list[str]:
    """The tokens of the first ``count`` reset emails ``email`` received, waiting for them."""
    for _ in range(500):
        mails = [m for m in smtp.mailbox.received(email) if "reset" in str(m["Subject"]).lower()]
        if len(mails) >= count:
            return [token_in(m, "/reset-password") for m in mails[:count]]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} reset emails to {email} did not arrive")


async def requested_reset(client: httpx.AsyncClient, smtp: SmtpServer, email: str) -> str:
    assert (await forgot_password(client, email)).status_code == 202
    [token] = await reset_tokens(smtp, email)
    return token


async def assert_session_state(client: httpx.AsyncClient, access: str, live: bool) -> None:
    response = await verify_token(client, access)
    if live:
        assert response.status_code == 200, response.text
    else:
        assert_problem(response, 401, "SESSION_REVOKED")


async def test_forgot_password_answers_the_same_whether_or_not_the_account_exists(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    known = random_email("known")
    unknown = random_email("unknown")
    await register_verified(client, smtp.mailbox, known)

    for_known = await forgot_password(client, known)
    for_unknown = await forgot_password(client, unknown)

    assert for_known.status_code == for_unknown.status_code == 202
    assert for_known.json() == for_unknown.json()
    assert {k: v for k, v in for_known.headers.items() if k not in VOLATILE_HEADERS} == {
        k: v for k, v in for_unknown.headers.items() if k not in VOLATILE_HEADERS
    }
    message = await smtp.mailbox.wait_for(known, "reset your password")
    assert link_in(message, "/reset-password").startswith(f"{PUBLIC_URL}/reset-password?token=")
    assert await smtp.mailbox.settled(unknown) == []


async def test_a_reset_sets_the_new_password_spends_the_token_and_ends_every_session(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email, remembered, refresh_token = await remembered_user(client, smtp.mailbox, "reset")
    other = (await login(client, email)).json()["access_token"]
    token = await requested_reset(client, smtp, email)

    response = await reset(client, token)

    assert response.status_code == 200
    assert response.json() == {"status": "password_reset"}
    for access in (remembered, other):
        await assert_session_state(client, access, live=False)
    assert (await refresh(client, refresh_token)).json()["code"] == "INVALID_REFRESH_TOKEN"
    old = await login(client, email)
    assert_problem(old, 401, "INVALID_CREDENTIALS")
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200
    await smtp.mailbox.wait_for(email, "your password was changed")
    again = await reset(client, token, "Yet-Another-Horse-9")
    assert_problem(again, 400, "TOKEN_INVALID")


async def test_a_reset_confirms_the_email_of_an_unverified_account(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("unverified")
    assert (await register(client, email, STRONG_PASSWORD)).status_code == 202
    assert (await login(client, email)).json()["code"] == "EMAIL_NOT_VERIFIED"
    token = await requested_reset(client, smtp, email)

    assert (await reset(client, token)).status_code == 200

    logged_in = await login(client, email, NEW_PASSWORD)
    assert logged_in.status_code == 200
    me = await client.get("/api/v1/auth/me", headers=bearer(logged_in.json()["access_token"]))
    assert me.json()["is_verified"] is True


async def test_a_reset_link_expires_after_the_reset_token_ttl(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "late", clock=clock, reset_token_ttl=600) as (
        client,
        _,
        email,
    ):
        token = await requested_reset(client, smtp, email)
        clock.advance(600)

        response = await reset(client, token)

        assert_problem(response, 410, "TOKEN_EXPIRED")
        assert response.json()["detail"] == "This link has expired. Please request a new one"
        assert (await login(client, email)).status_code == 200


async def test_a_weak_new_password_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "weak")
    access = (await login(client, email)).json()["access_token"]
    token = await requested_reset(client, smtp, email)

    weak = await reset(client, token, "password")

    assert_problem(weak, 422, "WEAK_PASSWORD")
    await assert_session_state(client, access, live=True)
    assert (await login(client, email)).status_code == 200
    assert (await reset(client, token)).status_code == 200


async def test_using_one_of_two_reset_links_spends_both(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = await verified_user(client, smtp.mailbox, "twice")
    assert (await forgot_password(client, email)).status_code == 202
    assert (await forgot_password(client, email)).status_code == 202
    first, second = await reset_tokens(smtp, email, count=2)
    assert first != second

    assert (await reset(client, second)).status_code == 200

    spent = await reset(client, first, "Yet-Another-Horse-9")
    assert_problem(spent, 400, "TOKEN_INVALID")
    assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_an_unknown_reset_token_is_invalid(client: httpx.AsyncClient) -> None:
    response = await reset(client, "no-such-token")
    assert_problem(response, 400, "TOKEN_INVALID")


async def test_a_reset_that_fails_midway_changes_nothing(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = await verified_user(client, smtp.mailbox, "atomic")
    access = (await login(client, email)).json()["access_token"]
    token = await requested_reset(client, smtp, email)

    # The "password changed" email is the last write of a reset: make the database refuse it.
    # Captured rather than rendered: the console renderer would spend seconds on the traceback.
    with capture_logs() as logs:
        async with outbox_refuses_mail_to(services, email):
            failed = await reset(client, token)
    assert failed.status_code == 500
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["request.crashed"]

    assert (await login(client, email)).status_code == 200
    assert (await login(client, email, NEW_PASSWORD)).status_code == 401
    await assert_session_state(client, access, live=True)
    assert (await reset(client, token)).status_code == 200
    await assert_session_state(client, access, live=False)


async def test_the_reset_link_moves_its_token_into_a_cookie_and_shows_a_posting_form(
    client: httpx.AsyncClient,
) -> None:
    token = "SecretTokenValue-1234567890"
    opened = await client.get(f"/reset-password?token={token}")
    assert opened.status_code == 303 and opened.headers["location"] == "/reset-password"
    [cookie] = opened.headers.get_list("set-cookie")
    assert cookie.startswith(f"bastion_link_reset_password={token};")
    assert "Path=/reset-password" in cookie and "HttpOnly" in cookie

    page = await client.get("/reset-password")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/reset-password"' in page.text
    assert 'type="password"' in page.text and token not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert page.headers["referrer-policy"] == "strict-origin"
    assert page.headers["cache-control"] == "no-store"


@asynccontextmanager
async def outbox_refuses_mail_to(services: Services, recipient: str) -> AsyncIterator[None]:
    """A database trigger that rejects outbox rows for ``recipient``, dropped afterwards."""
    name = f"refuse_{uuid.uuid4().hex[:12]}"
    quoted = recipient.replace("'", "''")
    if services.settings.is_sqlite:
        create = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON outbox WHEN NEW.recipient = '{quoted}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    else:
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.recipient = '{quoted}' THEN RAISE EXCEPTION 'refused by test'; END IF; "
            "RETURN NEW; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON outbox", f"DROP FUNCTION {name}()"]
    async with services.engine.begin() as connection:
        for statement in create:
            await connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with services.engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)
