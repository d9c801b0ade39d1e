"""The pages the change-of-email and invitation links open: a GET changes nothing, the form
posts the token in its body (never in its action URL), and all works without script."""

from __future__ import annotations

import httpx

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.core.clock import FrozenClock
from tests.page_forms import fill_in, form_to, submit
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    link_in,
    login,
    make_settings,
    random_email,
    running_app,
    verified_user,
    verify_token,
)

NEW_PASSWORD = "Another-Horse-8"


async def change_link(client: httpx.AsyncClient, smtp: SmtpServer) -> tuple[str, str, str]:
    """A signed-in user who asked for a new address: their access token, the new address and
    the emailed link."""
    email = await verified_user(client, smtp.mailbox, "pages-change")
    access = (await login(client, email)).json()["access_token"]
    new = random_email("pages-new")
    response = await client.post(
        "/api/v1/auth/me/email", json={"new_email": new}, headers=bearer(access)
    )
    assert response.status_code == 202
    link = link_in(await smtp.mailbox.wait_for(new, "confirm your new"), "/confirm-email")
    return access, new, link


async def test_the_confirm_email_page_changes_nothing_until_its_button_is_pressed(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    access, new, link = await change_link(client, smtp)
    token = link.split("token=", 1)[1]
    opened = await client.get(link)
    assert opened.status_code == 303 and opened.headers["location"] == "/confirm-email"
    page = await client.get("/confirm-email")
    assert page.status_code == 200
    form = form_to(page, "/confirm-email")
    assert "token=" not in form.action and form.fields["token"] == token
    assert (await verify_token(client, access)).status_code == 200, "a GET changes nothing"
    assert (await login(client, new)).status_code == 401

    done = await submit(client, form)
    assert done.status_code == 200 and "Email address changed" in done.text
    assert_problem(await verify_token(client, access), 401, "SESSION_REVOKED")
    assert (await login(client, new)).status_code == 200
    again = await submit(client, form)
    assert again.status_code == 400 and "invalid or has already been used" in again.text
    missing = await client.get("/confirm-email")
    assert "missing its token" in missing.text


async def test_the_confirm_email_page_refuses_a_post_from_another_site(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, _ = app
    access, _, link = await change_link(client, smtp)
    await client.get(link)
    form = form_to(await client.get("/confirm-email"), "/confirm-email")
    refused = await submit(client, form, {"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert (await verify_token(client, access)).status_code == 200


async def test_an_expired_change_link_says_so(database_url: str, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    settings = make_settings(database_url, smtp.url)
    async with running_app(settings, clock=clock) as (client, _):
        _, _, link = await change_link(client, smtp)
        await client.get(link)
        clock.advance(3601)
        expired = await fill_in(client, "/confirm-email")
        assert expired.status_code == 410 and "This link has expired" in expired.text


async def invitation_link(client: httpx.AsyncClient, services: Services, smtp: SmtpServer) -> str:
    admin_email = random_email("pages-admin")
    await services.accounts.create_user(admin_email, STRONG_PASSWORD, Role.ADMIN)
    admin = (await login(client, admin_email)).json()["access_token"]
    email = random_email("pages-invited")
    response = await client.post(
        "/api/v1/admin/users", json={"email": email, "invite": True}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    return link_in(await smtp.mailbox.wait_for(email, "invited"), "/accept-invite")


async def test_the_invitation_page_is_a_form_choosing_a_password(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    link = await invitation_link(client, services, smtp)
    opened = await client.get(link)
    assert opened.status_code == 303 and opened.headers["location"] == "/accept-invite"
    page = await client.get("/accept-invite")
    form = form_to(page, "/accept-invite")
    assert set(form.fields) == {"csrf_token", "token", "password"}
    assert form.autocomplete == {"password": "new-password"}
    assert "token=" not in form.action
    weak = await submit(client, form, password="short")
    assert weak.status_code == 422 and 'class="broken"' in weak.text
    retry = form_to(weak, "/accept-invite")
    assert retry.fields["token"] == form.fields["token"], "a refused password keeps the link"
    done = await submit(client, retry, password=NEW_PASSWORD)
    assert done.status_code == 200 and "Your account is ready" in done.text
    spent = await submit(client, retry, password=NEW_PASSWORD)
    assert spent.status_code == 400
