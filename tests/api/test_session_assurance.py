"""Sessions keep how they proved who they are (aal, amr) and when (auth_time): in access tokens,
in verify-token, through refreshes, and in the session list."""

from __future__ import annotations

import httpx
import jwt

from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.support import (
    SmtpServer,
    access_token,
    app_with_user,
    bearer,
    refresh,
    remembered_login,
    verify_token,
)


async def test_a_password_login_is_aal1_by_password_proven_at_login(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "assured", clock=clock) as (client, _, email):
        access, _ = await remembered_login(client, email)
        claims = jwt.decode(access, options={"verify_signature": False})
        assert (claims["aal"], claims["amr"]) == ("aal1", ["pwd"])
        assert claims["auth_time"] == int(clock.now().timestamp())
        body = (await verify_token(client, access)).json()
        assert (body["aal"], body["amr"], body["auth_time"]) == (
            "aal1",
            ["pwd"],
            claims["auth_time"],
        )


async def test_a_refresh_keeps_the_sessions_assurance_and_auth_time(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "assured", clock=clock) as (client, _, email):
        access, refresh_token = await remembered_login(client, email)
        proven_at = jwt.decode(access, options={"verify_signature": False})["auth_time"]
        clock.advance(600)
        response = await refresh(client, refresh_token)
        assert response.status_code == 200, response.text
        claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
        assert (claims["aal"], claims["amr"], claims["auth_time"]) == ("aal1", ["pwd"], proven_at)
        assert claims["iat"] == proven_at + 600


async def test_the_session_list_shows_each_sessions_assurance_level(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    access = await access_token(client, smtp.mailbox)
    sessions = (await client.get("/api/v1/auth/sessions", headers=bearer(access))).json()
    assert [s["aal"] for s in sessions] == ["aal1"]
