"""The account pages: the profile, the sessions (this one marked; end one, or all the others)
and the security activity."""

from __future__ import annotations

import re

import httpx

from tests.page_forms import fill_in, form_to, forms_of, page_sign_in, submit
from tests.support import STRONG_PASSWORD, SmtpServer, app_with_user, bearer, login

SESSION_ROW = re.compile(
    r'<li class="session[^"]*" data-session-id="([0-9a-f-]{36})"( data-current)?>'
)


def session_rows(page: httpx.Response) -> list[tuple[str, bool]]:
    return [(sid, bool(current)) for sid, current in SESSION_ROW.findall(page.text)]


async def test_the_account_page_shows_the_profile_and_needs_a_session(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        for path in ("/account", "/account/sessions", "/account/activity"):
            refused = await client.get(path)
            assert refused.status_code == 303
            assert refused.headers["location"] == f"/login?return_to={path}"
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account")
        assert page.status_code == 200
        assert f"<dd data-email>{email}" in page.text
        assert 'aria-current="page"' in page.text


async def test_the_sessions_page_marks_this_session_and_ends_another(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        other = (await login(client, email)).json()
        client.cookies.clear()
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account/sessions")
        rows = session_rows(page)
        assert len(rows) == 2
        [(current, _)] = [row for row in rows if row[1]]
        assert other["session_id"] in {sid for sid, _ in rows} - {current}
        for shown in ("IP address", "Signed in", "Last seen", "Python (httpx)", "This device"):
            assert shown in page.text

        [end_other] = [
            f for f in forms_of(page) if f.fields.get("session_id") == other["session_id"]
        ]
        ended = await submit(client, end_other)
        assert ended.status_code == 303 and ended.headers["location"] == "/account/sessions"
        me = await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
        assert me.status_code == 401
        assert session_rows(await client.get("/account/sessions")) == [(current, True)]


async def test_signing_out_all_other_sessions_keeps_this_one(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        others = [(await login(client, email)).json()["access_token"] for _ in range(2)]
        client.cookies.clear()
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account/sessions")
        [everyone_else] = [f for f in forms_of(page) if f.fields.get("end") == "others"]
        assert (await submit(client, everyone_else)).status_code == 303
        for token in others:
            me = await client.get("/api/v1/auth/me", headers=bearer(token))
            assert me.status_code == 401
        rows = session_rows(await client.get("/account/sessions"))
        assert len(rows) == 1 and rows[0][1]


async def test_ending_this_session_from_its_row_signs_the_browser_out(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account/sessions")
        [(current, _)] = session_rows(page)
        [mine] = [f for f in forms_of(page) if f.fields.get("session_id") == current]
        ended = await submit(client, mine)
        assert ended.headers["location"] == "/login"
        assert (await client.get("/account")).status_code == 303


async def test_a_session_form_naming_no_session_of_the_user_changes_nothing(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account/sessions")
        form = form_to(page, "/account/sessions")
        for session_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "x" * 500):
            answer = await submit(client, form, session_id=session_id)
            assert answer.status_code in (303, 404)
        assert len(session_rows(await client.get("/account/sessions"))) == 1


async def test_the_activity_page_lists_the_security_events_newest_first(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        await page_sign_in(client, email, "Wrong-Horse-1")
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account/activity")
        assert page.status_code == 200
        kinds = re.findall(r'data-event-type="([a-z_]+)"', page.text)
        assert kinds[:2] == ["login_succeeded", "login_failed"]
        assert "Failed sign-in attempt" in page.text and "Email address confirmed" in page.text
        for before in ("1", "abc", "9" * 19, "9" * 5000, "-1", "٣"):
            assert (await client.get(f"/account/activity?before={before}")).status_code == 200


async def test_a_page_for_signed_in_users_returns_there_after_signing_in(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "account") as (client, _, email):
        sent = await client.get("/account/activity")
        page = await client.get(sent.headers["location"])
        assert form_to(page, "/login").fields["return_to"] == "/account/activity"
        signed_in = await fill_in(
            client, sent.headers["location"], email=email, password=STRONG_PASSWORD
        )
        assert signed_in.headers["location"] == "/account/activity"
