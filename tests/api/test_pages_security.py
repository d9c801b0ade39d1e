"""The security pages: /account/security (password, authenticator app, recovery codes, passkeys
and security keys), /login/mfa, a passkey sign-in on /login, and the "Confirm it's you" step
before a change that needs a recent authentication. Real app, real services, both databases."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pyotp

from bastion.core.clock import FrozenClock
from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.page_forms import SAME_ORIGIN, Form, fill_in, form_to, forms_of, page_sign_in, submit
from tests.support import PUBLIC_URL, STRONG_PASSWORD, SmtpServer, app_with_user, bearer, login

SECURITY = "/account/security"
NEW_PASSWORD = "Another-Horse-8"
SECRET = re.compile(r"<code class=\"secret\" data-totp-secret>([A-Z2-7]+)</code>")
CODE = re.compile(r"<code data-recovery-code>([0-9a-z-]+)</code>")
REAUTH_MAX_AGE = 900


def intent_form(page: httpx.Response, intent: str) -> Form:
    [form] = [f for f in forms_of(page) if f.fields.get("intent") == intent]
    assert form.action == SECURITY and form.method == "post"
    return form


async def do(client: httpx.AsyncClient, intent: str, **typed: str) -> httpx.Response:
    """Open the security page and post its form for ``intent``."""
    page = await client.get(SECURITY)
    assert page.status_code == 200, page.text
    return await submit(client, intent_form(page, intent), **typed)


async def enrol_totp(client: httpx.AsyncClient, clock: FrozenClock) -> tuple[str, list[str]]:
    """Set up an authenticator app on the page; its secret and the recovery codes shown."""
    started = await do(client, "totp")
    assert started.status_code == 200
    [secret] = SECRET.findall(started.text)
    assert "<svg" in started.text and 'role="img"' in started.text
    confirm = form_to(started, SECURITY)
    assert confirm.autocomplete["code"] == "one-time-code"
    done = await submit(client, confirm, code=pyotp.TOTP(secret).at(clock.now()))
    assert done.status_code == 200, done.text
    codes = CODE.findall(done.text)
    clock.advance(30)
    return secret, codes


async def test_the_security_page_needs_a_session_and_is_linked_from_the_account(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "security") as (client, _, email):
        refused = await client.get(SECURITY)
        assert refused.headers["location"] == f"/login?return_to={SECURITY}"
        await page_sign_in(client, email, STRONG_PASSWORD)
        account = await client.get("/account")
        assert f'href="{SECURITY}"' in account.text
        page = await client.get(SECURITY)
        assert page.status_code == 200
        assert 'aria-current="page"' in page.text
        form = intent_form(page, "password")
        assert form.autocomplete == {
            "current_password": "current-password",
            "new_password": "new-password",
        }
        # Adding a key needs script: the form is hidden until the script finds WebAuthn.
        assert "data-needs-webauthn hidden" in page.text


async def test_changing_the_password_on_the_page_keeps_this_session_and_ends_the_others(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "security") as (client, _, email):
        other = (await login(client, email)).json()["access_token"]
        client.cookies.clear()
        await page_sign_in(client, email, STRONG_PASSWORD)
        wrong = await do(
            client, "password", current_password="Wrong-Horse-1", new_password=NEW_PASSWORD
        )
        assert wrong.status_code == 401
        assert 'role="alert"' in wrong.text and "current password is not right" in wrong.text
        weak = await do(client, "password", current_password=STRONG_PASSWORD, new_password="short")
        assert weak.status_code == 422 and 'class="broken"' in weak.text
        changed = await do(
            client, "password", current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD
        )
        assert changed.status_code == 303
        assert changed.headers["location"] == f"{SECURITY}?done=password"
        assert "Your password was changed" in (await client.get(changed.headers["location"])).text
        me = await client.get("/api/v1/auth/me", headers=bearer(other))
        assert me.status_code == 401
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_an_authenticator_app_is_set_up_with_a_code_and_brings_recovery_codes(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        started = await do(client, "totp")
        wrong = await submit(client, form_to(started, SECURITY), code="000000")
        assert wrong.status_code == 400 and 'role="alert"' in wrong.text
        [secret] = SECRET.findall(started.text)
        done = await submit(
            client, form_to(wrong, SECURITY), code=pyotp.TOTP(secret).at(clock.now())
        )
        codes = CODE.findall(done.text)
        assert len(codes) == 10 and len(set(codes)) == 10

        # "Download as .txt" without script: the page posts the codes back as a text file.
        download = form_to(done, SECURITY)
        assert download.fields["intent"] == "download"
        text = await submit(client, download)
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain")
        assert text.headers["content-disposition"] == 'attachment; filename="recovery-codes.txt"'
        assert text.text.split() == codes
        tampered = await submit(client, download, code3="<script>")
        assert tampered.status_code == 422

        page = await client.get(SECURITY)
        assert 'data-factor-type="totp"' in page.text
        assert 'data-recovery-codes-remaining="10"' in page.text
        # Shown once: the codes are on no page after this.
        assert not CODE.findall(page.text)


async def test_signing_in_with_a_second_factor_goes_through_login_mfa(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        secret, codes = await enrol_totp(client, clock)
        await client.post(
            "/logout",
            data=form_to(await client.get(SECURITY), "/logout").fields,
            headers=SAME_ORIGIN,
        )

        first = await fill_in(
            client, "/login?return_to=/account/sessions", email=email, password=STRONG_PASSWORD
        )
        assert first.status_code == 303
        assert first.headers["location"] == "/login/mfa?return_to=/account/sessions"
        # The mfa_token is in a cookie for /login/mfa only, never in the URL.
        [cookie] = [
            c for c in first.headers.get_list("set-cookie") if "bastion_link_login_mfa" in c
        ]
        assert "Path=/login/mfa" in cookie and "HttpOnly" in cookie
        page = await client.get(first.headers["location"])
        assert page.status_code == 200
        form = form_to(page, "/login/mfa")
        assert form.autocomplete["code"] == "one-time-code"
        assert "Use a security key / passkey" in page.text

        wrong = await submit(client, form, code="000000")
        assert wrong.status_code == 401 and 'role="alert"' in wrong.text
        passed = await submit(
            client, form_to(wrong, "/login/mfa"), code=pyotp.TOTP(secret).at(clock.now())
        )
        assert passed.status_code == 303 and passed.headers["location"] == "/account/sessions"
        assert (await client.get("/account/sessions")).status_code == 200
        # The mfa_token is spent: the page sends a new visitor back to sign in.
        assert (await client.get("/login/mfa")).headers["location"] == "/account"

        await client.post(
            "/logout",
            data=form_to(await client.get("/account"), "/logout").fields,
            headers=SAME_ORIGIN,
        )
        assert (await client.get("/login/mfa")).headers["location"] == "/login"
        again = await page_sign_in(client, email, STRONG_PASSWORD)
        with_code = await fill_in(client, again.headers["location"], code=codes[0].upper())
        assert with_code.status_code == 303 and with_code.headers["location"] == "/account"
        page = await client.get(SECURITY)
        assert 'data-recovery-codes-remaining="9"' in page.text


async def test_a_lapsed_sign_in_attempt_starts_over(database_url: str, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        secret, _ = await enrol_totp(client, clock)
        client.cookies.clear()
        first = await page_sign_in(client, email, STRONG_PASSWORD)
        page = await client.get(first.headers["location"])
        clock.advance(3600)
        late = await submit(
            client, form_to(page, "/login/mfa"), code=pyotp.TOTP(secret).at(clock.now())
        )
        assert late.status_code == 401
        assert "This sign-in attempt has expired" in late.text
        assert form_to(late, "/login")


async def test_a_change_after_the_recent_window_asks_to_confirm_it_is_you_then_finishes(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        secret, _ = await enrol_totp(client, clock)
        clock.advance(REAUTH_MAX_AGE + 60)

        asked = await do(client, "regenerate")
        assert asked.status_code == 403
        assert "Confirm it" in asked.text
        confirm = form_to(asked, SECURITY)
        assert confirm.fields["then.intent"] == "regenerate"
        assert confirm.autocomplete == {"password": "current-password", "code": "one-time-code"}

        wrong = await submit(
            client, confirm, password="Wrong-Horse-1", code=pyotp.TOTP(secret).at(clock.now())
        )
        assert wrong.status_code == 401 and 'role="alert"' in wrong.text
        # A password alone is not enough when the account has a second factor.
        half = await submit(client, form_to(wrong, SECURITY), password=STRONG_PASSWORD)
        assert half.status_code == 403 and "Confirm it" in half.text
        done = await submit(
            client,
            form_to(half, SECURITY),
            password=STRONG_PASSWORD,
            code=pyotp.TOTP(secret).at(clock.now()),
        )
        assert done.status_code == 200, done.text
        assert len(CODE.findall(done.text)) == 10  # the held action was carried out


async def test_without_a_second_factor_the_current_password_proves_an_old_session(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        clock.advance(REAUTH_MAX_AGE + 60)
        wrong = await do(
            client, "password", current_password="Wrong-Horse-1", new_password=NEW_PASSWORD
        )
        assert wrong.status_code == 401 and "current password is not right" in wrong.text
        done = await do(
            client, "password", current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"{SECURITY}?done=password"
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_confirm_it_is_you_never_holds_a_password(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        secret, _ = await enrol_totp(client, clock)
        clock.advance(REAUTH_MAX_AGE + 60)
        asked = await do(
            client, "password", current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD
        )
        assert asked.status_code == 403
        assert NEW_PASSWORD not in asked.text and STRONG_PASSWORD not in asked.text
        confirm = form_to(asked, SECURITY)
        assert confirm.fields["then.intent"] == "password"
        done = await submit(
            client, confirm, password=STRONG_PASSWORD, code=pyotp.TOTP(secret).at(clock.now())
        )
        assert done.headers["location"] == f"{SECURITY}?done=confirmed"
        again = await do(
            client, "password", current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD
        )
        assert again.headers["location"] == f"{SECURITY}?done=password"


async def test_factors_are_renamed_and_removed_on_the_page(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        await enrol_totp(client, clock)
        renamed = await do(client, "rename", name="My phone")
        assert renamed.headers["location"] == f"{SECURITY}?done=renamed"
        page = await client.get(renamed.headers["location"])
        assert "<h3>My phone</h3>" in page.text
        too_long = await do(client, "rename", name="x" * 65)
        assert too_long.status_code == 422
        unknown = await do(client, "remove", factor_id="00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404
        removed = await do(client, "remove")
        assert removed.headers["location"] == f"{SECURITY}?done=removed"
        page = await client.get(SECURITY)
        assert "data-factor-id" not in page.text
        assert "data-recovery-codes-remaining" not in page.text
        # Signing in needs no second step any more.
        client.cookies.clear()
        assert (await page_sign_in(client, email, STRONG_PASSWORD)).headers[
            "location"
        ] == "/account"


async def _options(client: httpx.AsyncClient, path: str, intent: str, **fields: str) -> Any:
    page = await client.get(path)
    form = forms_of(page)
    token = next(f.fields["csrf_token"] for f in form if "csrf_token" in f.fields)
    answer = await client.post(
        path, data={"csrf_token": token, "intent": intent, **fields}, headers=SAME_ORIGIN
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


async def test_a_passkey_is_added_on_the_page_and_signs_in_alone(
    database_url: str, smtp: SmtpServer
) -> None:
    key = SoftwareAuthenticator()
    async with app_with_user(database_url, smtp, "security") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        options = await _options(client, SECURITY, "webauthn_options", passkey="true")
        assert options["authenticatorSelection"]["residentKey"] == "required"
        page = await client.get(SECURITY)
        register = intent_form(page, "webauthn_register")
        bad = await submit(client, register, credential=json.dumps({"id": "x"}), name="Laptop")
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        added = await submit(
            client, register, credential=json.dumps(key.create(options, PUBLIC_URL)), name="Laptop"
        )
        assert added.status_code == 200, added.text
        assert len(CODE.findall(added.text)) == 10
        page = await client.get(SECURITY)
        assert 'data-factor-type="webauthn"' in page.text and "<h3>Laptop</h3>" in page.text

        client.cookies.clear()
        options = await _options(client, "/login", "passkey_options")
        login_form = form_to(await client.get("/login"), "/login")
        assert login_form.fields["credential"] == ""
        signed_in = await submit(
            client, login_form, credential=json.dumps(key.get(options, PUBLIC_URL))
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
        assert (await client.get("/account")).status_code == 200

        client.cookies.clear()
        replayed = await submit(
            client,
            form_to(await client.get("/login"), "/login"),
            credential=json.dumps(key.get(options, PUBLIC_URL)),
        )
        assert replayed.status_code == 401 and 'role="alert"' in replayed.text
        not_json = await submit(
            client, form_to(await client.get("/login"), "/login"), credential="[1]"
        )
        assert not_json.status_code == 422


async def test_a_security_key_passes_the_second_step_of_login_mfa(
    database_url: str, smtp: SmtpServer
) -> None:
    key = SoftwareAuthenticator()
    async with app_with_user(database_url, smtp, "security") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        options = await _options(client, SECURITY, "webauthn_options", passkey="false")
        register = intent_form(await client.get(SECURITY), "webauthn_register")
        await submit(client, register, credential=json.dumps(key.create(options, PUBLIC_URL)))
        client.cookies.clear()
        first = await page_sign_in(client, email, STRONG_PASSWORD)
        assert first.headers["location"] == "/login/mfa"
        options = await _options(client, "/login/mfa", "webauthn_options")
        form = form_to(await client.get("/login/mfa"), "/login/mfa")
        passed = await submit(client, form, credential=json.dumps(key.get(options, PUBLIC_URL)))
        assert passed.status_code == 303 and passed.headers["location"] == "/account"


async def test_the_new_forms_refuse_a_cross_site_post(database_url: str, smtp: SmtpServer) -> None:
    async with app_with_user(database_url, smtp, "security") as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        form = intent_form(await client.get(SECURITY), "password")
        forged = await submit(
            client,
            form,
            headers={"Origin": "https://evil.example"},
            current_password=STRONG_PASSWORD,
            new_password=NEW_PASSWORD,
        )
        assert forged.status_code == 403
        assert (await login(client, email)).status_code == 200
        unknown = await submit(client, form, intent="fly")
        assert unknown.status_code == 422


async def test_an_old_session_gets_no_key_options_and_its_fallback_asks_to_confirm(
    database_url: str, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    async with app_with_user(database_url, smtp, "security", clock=clock) as (client, _, email):
        await page_sign_in(client, email, STRONG_PASSWORD)
        clock.advance(REAUTH_MAX_AGE + 60)
        page = await client.get(SECURITY)
        token = intent_form(page, "totp").fields["csrf_token"]
        refused = await client.post(
            SECURITY,
            data={"csrf_token": token, "intent": "webauthn_options"},
            headers=SAME_ORIGIN,
        )
        assert refused.status_code == 403
        assert refused.json() == {"code": "REAUTHENTICATION_REQUIRED"}
        # The script then posts the form as it is, and the page asks to confirm it's you.
        asked = await submit(client, intent_form(page, "webauthn_register"), name="Laptop")
        assert asked.status_code == 403
        confirm = form_to(asked, SECURITY)
        assert confirm.fields["then.intent"] == "webauthn_register"
        done = await submit(client, confirm, password=STRONG_PASSWORD)
        assert done.headers["location"] == f"{SECURITY}?done=confirmed"
        options = await _options(client, SECURITY, "webauthn_options", passkey="false")
        assert options["rp"]["id"] == "bastion.test"


async def test_the_second_step_page_without_its_cookie_starts_over(
    database_url: str, smtp: SmtpServer
) -> None:
    async with app_with_user(database_url, smtp, "security") as (client, _, _email):
        assert (await client.get("/login/mfa")).headers["location"] == "/login"
        token = form_to(await client.get("/login"), "/login").fields["csrf_token"]
        posted = await client.post(
            "/login/mfa", data={"csrf_token": token, "code": "123456"}, headers=SAME_ORIGIN
        )
        assert posted.status_code == 401
        assert "This sign-in attempt has expired" in posted.text
        forged = await client.post(
            "/login/mfa",
            data={"csrf_token": token, "code": "123456"},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
