"""The pages' side of HTTP: the browser session and its cookie, form posts and their checks
(origin and csrf_token), responses with the pages' headers, and errors shown as pages.

Like ``sessions/responses.py``, an HTTP module that is not a routes module: the page handlers
in ``routes.py`` share it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from bastion.core.context import Principal
from bastion.core.errors import BastionError, StorageUnavailable
from bastion.core.i18n import active_locale
from bastion.guards import CsrfRejected
from bastion.http.deps import provided
from bastion.http.errors import RETRY_LATER_SECONDS, ProblemTable
from bastion.http.unstorable import is_storable
from bastion.pages.model import form_token, form_token_matches
from bastion.pages.views import Pages
from bastion.ratelimit.errors import RateLimited
from bastion.sessions.authentication import Authenticator

SESSION_COOKIE = "bastion_session"
CSRF_COOKIE = "bastion_csrf"
# Browsers refuse a __Host- cookie unless it is Secure, for the whole host and set by it: no
# sibling subdomain can plant one. Without Secure (local http) the plain names are used.
HOST_ONLY = "__Host-"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 16
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The server's default is no-referrer, under which browsers post forms with `Origin: null`;
    # strict-origin lets them name the origin (and never a path) so the origin check can read it.
    "Referrer-Policy": "strict-origin",
    "Vary": "Accept-Language, Cookie",
}


class UnreadableForm(BastionError):
    """A form field holds text no database stores (NUL): refused as the API refuses it (the
    middleware leaves form posts, which only the pages take, to their handlers)."""

    detail = "A field of the form holds a character that is not allowed."


class FormNotUnderstood(BastionError):
    """A form post asks for something its page does not do (an unknown ``intent``, a field
    that is not what the page sent): refused with a 422 page, nothing changed."""

    detail = "The form could not be understood. Please go back and try again."


class SignInRequired(Exception):
    """The page is for signed-in users and the browser has no live session."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def pages_of(request: Request) -> Pages:
    return provided(request, Pages)


def cookie_name(name: str, pages: Pages) -> str:
    return f"{HOST_ONLY}{name}" if pages.secure_cookies else name


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form post (the last of a repeated name); none when the body
    is not one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return {}
    try:
        fields = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
            encoding="utf-8",
        )
    except ValueError:  # UnicodeDecodeError included, and too many fields
        return {}
    return dict(fields)


def _same_origin(request: Request, pages: Pages) -> bool:
    """Whether the post names Bastion's own origin (an absent Origin falls back to Referer; a
    request naming neither is not a browser's, and the csrf_token alone decides)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}".lower() == pages.public_origin


async def check_form(request: Request) -> None:
    """Refuse a form post from another origin (another port of this host included), or without
    the csrf_token of this browser, before anything else runs; keep its fields for the page."""
    pages = pages_of(request)
    if not _same_origin(request, pages):
        raise CsrfRejected()
    form = await read_form(request)
    secret = request.cookies.get(cookie_name(CSRF_COOKIE, pages))
    if not form_token_matches(pages.form_key, secret, form.get("csrf_token")):
        raise CsrfRejected()
    if not all(is_storable(name) and is_storable(value) for name, value in form.items()):
        raise UnreadableForm()
    request.state.form = form


FormChecked = Depends(check_form)


def form_of(request: Request) -> dict[str, str]:
    form: dict[str, str] = request.state.form
    return form


def _csrf_token(request: Request, pages: Pages) -> str:
    secret = request.cookies.get(cookie_name(CSRF_COOKIE, pages))
    if not secret:
        secret = getattr(request.state, "new_csrf_secret", None) or secrets.token_urlsafe(32)
        request.state.new_csrf_secret = secret
    return form_token(pages.form_key, secret)


async def current_user(request: Request) -> Principal | None:
    """Who the browser's session cookie signs in, if its session is live."""
    if hasattr(request.state, "principal"):
        principal: Principal | None = request.state.principal
        return principal
    token = request.cookies.get(cookie_name(SESSION_COOKIE, pages_of(request)))
    authenticator = provided(request, Authenticator)
    principal = await authenticator.authenticate_browser(token) if token else None
    request.state.principal = principal
    return principal


async def signed_in(request: Request) -> Principal:
    principal = await current_user(request)
    if principal is None:
        raise SignInRequired(request.url.path)
    return principal


MaybeSignedIn = Annotated[Principal | None, Depends(current_user)]
SignedIn = Annotated[Principal, Depends(signed_in)]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page: the template in the request's language, with the form token and the signed-in
    user, and the pages' headers (their Content-Security-Policy among them)."""
    pages = pages_of(request)
    html = pages.views.render(
        template,
        csrf_token=_csrf_token(request, pages),
        principal=getattr(request.state, "principal", None),
        path=request.scope["path"],
        policy=pages.policy,
        **context,
    )
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": pages.content_security_policy,
        "Content-Language": active_locale(),
    }
    return _finish(request, HTMLResponse(html, status_code, headers=headers))


def json_answer(request: Request, content: Any, status_code: int = 200) -> Response:
    """What a page's script asks for (WebAuthn options): JSON, with the pages' headers."""
    headers = {**PAGE_HEADERS, "Content-Security-Policy": pages_of(request).content_security_policy}
    return _finish(request, JSONResponse(content, status_code, headers=headers))


def redirect(request: Request, url: str) -> Response:
    """See other: the answer to a completed form post, so reloading does not post it again."""
    return _finish(request, RedirectResponse(url, 303, headers={"Cache-Control": "no-store"}))


def _finish(request: Request, response: Response) -> Response:
    secret = getattr(request.state, "new_csrf_secret", None)
    if secret is not None:
        pages = pages_of(request)
        response.set_cookie(
            cookie_name(CSRF_COOKIE, pages),
            secret,
            path="/",
            secure=pages.secure_cookies,
            httponly=True,
            samesite="lax",
        )
    return response


def set_session_cookie(response: Response, pages: Pages, token: str, max_age: int | None) -> None:
    """The page session's cookie; without "remember me" it ends with the browser."""
    response.set_cookie(
        cookie_name(SESSION_COOKIE, pages),
        token,
        max_age=max_age,
        path="/",
        secure=pages.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, pages: Pages) -> None:
    response.delete_cookie(
        cookie_name(SESSION_COOKIE, pages),
        path="/",
        secure=pages.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def set_link_cookie(response: Response, pages: Pages, path: str, token: str, max_age: int) -> None:
    """Keep an emailed link's token for the page at ``path`` (and for it only), so that the
    token leaves the address bar, the history and any Referer at once."""
    response.set_cookie(
        link_cookie(path),
        token,
        max_age=max_age,
        path=path,
        secure=pages.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def clear_link_cookie(response: Response, pages: Pages, path: str) -> None:
    response.delete_cookie(
        link_cookie(path), path=path, secure=pages.secure_cookies, httponly=True, samesite="lax"
    )


def link_cookie(path: str) -> str:
    return f"bastion_link{path.replace('/', '_').replace('-', '_')}"


class PageRoute(APIRoute):
    """A page's route: what the API answers as a problem document, a page shows as a page with
    the same status; a page for signed-in users sends others to sign in first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as refused:
                response = redirect(request, f"/login?return_to={quote(refused.path)}")
                clear_session_cookie(response, pages_of(request))
                return response
            except BastionError as error:
                return error_page(request, error)

        return page_handler


def error_page(request: Request, error: BastionError) -> Response:
    status = provided(request, ProblemTable).kind(type(error)).status
    response = render(request, "error.html", status, status=status, error=error)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, RateLimited) and retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    elif isinstance(error, StorageUnavailable):
        response.headers["Retry-After"] = RETRY_LATER_SECONDS
    return response
