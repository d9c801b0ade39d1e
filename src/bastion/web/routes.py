"""The pages that email links land on. They change nothing on GET: the user's click does.

Each page works without JavaScript: its form posts (the token in a hidden field, never in a URL)
to a handler here that completes the step or shows the page again with the error. With
JavaScript, pages.js sends the same step to the JSON API and shows the outcome in place. A form
refused as the API refuses its JSON (a field holding text no database can store: 422) is
answered here too, as the page, since the middleware leaves form posts to their handlers.
"""

from __future__ import annotations

import html
import re
from importlib import resources
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, Response

from bastion.accounts.service import AccountService
from bastion.core.errors import BastionError
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.guards import PerIpLimit, SameSiteOnly
from bastion.http.deps import ContextDep, provider
from bastion.http.errors import ProblemTable
from bastion.http.unstorable import is_storable
from bastion.passwords.errors import WeakPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH
from bastion.passwords.service import PasswordService

router = APIRouter(include_in_schema=False)
AccountsDep = Annotated[AccountService, Depends(provider(AccountService))]
PasswordsDep = Annotated[PasswordService, Depends(provider(PasswordService))]
ProblemsDep = Annotated[ProblemTable, Depends(provider(ProblemTable))]
STATIC = resources.files("bastion.web") / "static"
ASSET_TYPES = {"pages.js": "text/javascript", "pages.css": "text/css"}
# What new_token() makes; anything else is no token, and is never written into a page.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,512}")
MAX_FORM_FIELDS = 8
INCOMPLETE_LINK = "This link is missing its token. Request a new one from the sign-in page."
DIFFERENT_PASSWORDS = "The two passwords differ."
UNSTORABLE_FIELD = "The form held a character that no field may contain (NUL). Please try again."
LINK_PROBLEMS = {
    TokenExpired: "This link has expired. Please request a new one.",
    TokenInvalid: "This link is invalid or has already been used.",
}


def _page(title: str, body: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # The server's Referrer-Policy is no-referrer, under which a browser sends its form posts
        # with `Origin: null`. strict-origin names only our origin (never the path or the token
        # in it), so the posts below carry an Origin that the cross-site check can read.
        "<meta name='referrer' content='strict-origin'>"
        f"<title>{title}</title><link rel='stylesheet' href='/assets/pages.css'>"
        "<script src='/assets/pages.js' defer></script></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(page, status_code, headers={"Cache-Control": "no-store"})


def _result(message: str = "", ok: bool = False) -> str:
    kind = " class='ok'" if ok else " class='error'" if message else ""
    return f"<p id='result' role='status'{kind}>{html.escape(message)}</p>"


def _token_field(token: str) -> str:
    return f"<input type='hidden' name='token' value='{token}'>"


def _usable(token: str | None) -> str | None:
    return token if token is not None and TOKEN.fullmatch(token) else None


async def _form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form post; none when the body is not one (bytes that are not
    UTF-8 included: that is no form a browser sends, and no token)."""
    try:
        fields = parse_qsl(
            (await request.body()).decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError included
        return {}
    return dict(fields)


def _storable(form: dict[str, str]) -> bool:
    return all(is_storable(name) and is_storable(value) for name, value in form.items())


def _failure(error: BastionError, problems: ProblemTable) -> tuple[str, int]:
    """The message of a step refused by its use case, and the status the API answers it with."""
    message = LINK_PROBLEMS.get(type(error), error.detail)
    return message, problems.kind(type(error)).status


def _verify_page(token: str | None, message: str = "", status_code: int = 200) -> HTMLResponse:
    if token is None:
        action = _result(message or INCOMPLETE_LINK)
    else:
        action = (
            "<p>Click the button to confirm your email address.</p>"
            "<button id='verify' type='button' hidden>Confirm my email</button>"
            "<noscript><form method='post' action='/verify-email'>"
            f"{_token_field(token)}<button type='submit'>Confirm my email</button>"
            f"</form></noscript>{_result(message)}"
        )
    return _page("Confirm your email", f"<h1>Confirm your email</h1>{action}", status_code)


@router.get("/verify-email")
async def verify_email_page(token: str | None = None) -> HTMLResponse:
    return _verify_page(_usable(token))


@router.post("/verify-email", dependencies=[SameSiteOnly, PerIpLimit])
async def verify_email_form(
    request: Request, accounts: AccountsDep, problems: ProblemsDep, context: ContextDep
) -> HTMLResponse:
    form = await _form(request)
    token = _usable(form.get("token"))
    if not _storable(form):
        return _verify_page(token, UNSTORABLE_FIELD, status.HTTP_422_UNPROCESSABLE_CONTENT)
    if token is None:
        return _verify_page(None, LINK_PROBLEMS[TokenInvalid], status.HTTP_400_BAD_REQUEST)
    try:
        await accounts.verify_email(token, context)
    except (TokenInvalid, TokenExpired) as error:
        return _verify_page(None, *_failure(error, problems))
    return _page(
        "Email confirmed",
        "<h1>Email confirmed</h1>"
        + _result("Your email is confirmed. You can now sign in.", ok=True),
    )


def _reset_page(token: str | None, message: str = "", status_code: int = 200) -> HTMLResponse:
    if token is None:
        action = _result(message or INCOMPLETE_LINK)
    else:
        action = (
            "<form id='reset' method='post' action='/reset-password'>"
            f"{_token_field(token)}"
            "<label>New password <input type='password' name='new_password' "
            f"autocomplete='new-password' required maxlength='{MAX_PASSWORD_LENGTH}'></label>"
            "<label>Repeat it <input type='password' name='repeat' autocomplete='new-password' "
            f"required maxlength='{MAX_PASSWORD_LENGTH}'></label>"
            f"<button type='submit'>Set my new password</button></form>{_result(message)}"
        )
    return _page("Choose a new password", f"<h1>Choose a new password</h1>{action}", status_code)


@router.get("/reset-password")
async def reset_password_page(token: str | None = None) -> HTMLResponse:
    return _reset_page(_usable(token))


@router.post("/reset-password", dependencies=[SameSiteOnly, PerIpLimit])
async def reset_password_form(
    request: Request, passwords: PasswordsDep, problems: ProblemsDep, context: ContextDep
) -> HTMLResponse:
    form = await _form(request)
    token = _usable(form.get("token"))
    if not _storable(form):
        # The form again, when its token is one, for the person to type the password again.
        return _reset_page(token, UNSTORABLE_FIELD, status.HTTP_422_UNPROCESSABLE_CONTENT)
    if token is None:
        return _reset_page(None, LINK_PROBLEMS[TokenInvalid], status.HTTP_400_BAD_REQUEST)
    new_password = form.get("new_password", "")
    if new_password != form.get("repeat"):
        return _reset_page(token, DIFFERENT_PASSWORDS, status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        await passwords.reset_password(token, new_password, context)
    except WeakPassword as error:
        return _reset_page(token, *_failure(error, problems))
    except (TokenInvalid, TokenExpired) as error:
        return _reset_page(None, *_failure(error, problems))
    return _page(
        "Password changed",
        "<h1>Password changed</h1>"
        + _result(
            "Your password has been changed. Every device was signed out; sign in again.", ok=True
        ),
    )


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSET_TYPES:
        return Response(status_code=404)
    return Response(
        (STATIC / name).read_bytes(),
        media_type=ASSET_TYPES[name],
        headers={"Cache-Control": "public, max-age=3600"},
    )
