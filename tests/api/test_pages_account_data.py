"""The account's ownership on the pages: the change-email form of /account (through the emailed
/confirm-email link), and /account/data (download my data; delete my account, always confirmed
by re-authentication). Real app, real services, both databases."""

from __future__ import annotations

import json

from bastion.core.clock import FrozenClock
from tests.page_forms import fill_in, form_to, forms_of, page_sign_in, submit
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    app_with_user,
    link_in,
    login,
    random_email,
)

DATA = "/account/data"
REAUTH_MAX_AGE = 900


async def test_the_email_changes_through_the_link_mailed_to_the_new_address(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "owner") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get("/account")
        form = form_to(page, "/account")
        assert form.autocomplete == {"new_email": "email"}
        assert 'href="/account/data"' in page.text

        refused = await submit(client, form, new_email="not an address")
        assert refused.status_code == 422 and 'role="alert"' in refused.text
        same = await submit(client, form, new_email=email.upper())
        assert same.status_code == 422 and "already your address" in same.text

        new_email = random_email("moved")
        asked = await submit(client, form, new_email=new_email)
        assert asked.status_code == 200
        assert f"We sent a link to {new_email}" in asked.text
        assert f"<dd data-email>{email}" in asked.text  # unchanged until the link is opened

        link = link_in(
            await smtp.mailbox.wait_for(new_email, "Confirm your new email"), "/confirm-email"
        )
        opened = await client.get(link)
        assert opened.status_code == 303 and opened.headers["location"] == "/confirm-email"
        confirmed = await fill_in(client, "/confirm-email")
        assert confirmed.status_code == 200 and "Email address changed" in confirmed.text
        # Every session ended with the change, this browser's included.
        assert (await client.get("/account")).status_code == 303
        assert (await login(client, email)).status_code == 401
        signed_in = await page_sign_in(client, new_email, STRONG_PASSWORD)
        assert signed_in.headers["location"] == "/account"


async def test_an_old_sign_in_confirms_it_is_you_before_the_email_change_is_asked(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "owner", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        clock.advance(REAUTH_MAX_AGE + 60)
        new_email = random_email("moved")
        asked = await fill_in(client, "/account", new_email=new_email)
        assert asked.status_code == 403
        confirm = form_to(asked, "/account")
        assert confirm.fields["then.new_email"] == new_email
        done = await submit(client, confirm, password=STRONG_PASSWORD)
        assert done.status_code == 200 and f"We sent a link to {new_email}" in done.text
        await smtp.mailbox.wait_for(new_email, "Confirm your new email")


async def test_my_data_downloads_as_a_json_file_without_secrets(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "owner") as (client, _, email):
        assert (await client.get(DATA)).headers["location"] == f"/login?return_to={DATA}"
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get(DATA)
        [export] = [f for f in forms_of(page) if f.fields.get("intent") == "export"]
        assert export.action == DATA
        answer = await submit(client, export)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="bastion-export-')
        assert answer.headers["cache-control"] == "no-store"
        data = json.loads(answer.text)
        assert data["user"]["email"] == email
        assert data["sessions"] and data["security_events"]
        for secret in ("password_hash", "token", "secret", STRONG_PASSWORD):
            assert secret not in answer.text


async def test_deleting_the_account_always_asks_to_confirm_it_is_you(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "owner") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get(DATA)
        [delete] = [f for f in forms_of(page) if f.fields.get("intent") == "delete"]
        asked = await submit(client, delete)  # a sign-in of a moment ago is not enough
        assert asked.status_code == 403 and "Confirm it" in asked.text
        confirm = form_to(asked, DATA)
        assert confirm.fields["then.intent"] == "delete"
        wrong = await submit(client, confirm, password="Wrong-Horse-1")
        assert wrong.status_code == 401
        assert (await login(client, email)).status_code == 200

        deleted = await submit(client, form_to(wrong, DATA), password=STRONG_PASSWORD)
        assert deleted.status_code == 200
        assert "Your account was deleted" in deleted.text
        assert "/logout" not in deleted.text  # signed out with it
        assert (await client.get("/account")).status_code == 303
        assert (await login(client, email)).status_code == 401
        await smtp.mailbox.wait_for(email)
