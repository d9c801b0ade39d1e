"""The hosted pages. Each form posts to its own page (the sign-out button and the unverified
sign-in's resend form aside), and each handler runs the same use case as the JSON API: the
log-in flow with its limits and lockouts, the accounts, passwords, sessions and audit services.

Pages work without JavaScript; pages.js only enhances them. No secret travels in a URL: the
token of an emailed link is moved into a cookie for its page at once, and the form posts.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from bastion.accounts.errors import EmailAlreadyVerified, SecurityStateChanged
from bastion.accounts.service import AccountService
from bastion.audit.service import AuditService
from bastion.core.email_address import InvalidEmailAddress, normalize_email
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.core.origins import safe_destination
from bastion.guards import PerIpLimit, RegistrationLimit, enforce, limit_per_email
from bastion.http.deps import ContextDep, provided, provider
from bastion.http.errors import ProblemRows, ProblemType
from bastion.login.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    SecondFactorRequired,
)
from bastion.login.service import LoginFlow
from bastion.pages.browser import (
    FormChecked,
    MaybeSignedIn,
    PageRoute,
    SignedIn,
    UnreadableForm,
    clear_link_cookie,
    clear_session_cookie,
    form_of,
    link_cookie,
    pages_of,
    redirect,
    render,
    set_link_cookie,
    set_session_cookie,
)
from bastion.pages.model import device_of, usable_token
from bastion.pages.views import Pages
from bastion.passwords.errors import WeakPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH, requirements
from bastion.passwords.service import PasswordService
from bastion.ratelimit.errors import RateLimited
from bastion.ratelimit.model import Rule
from bastion.ratelimit.service import RateLimits
from bastion.sessions.errors import SessionNotFound
from bastion.sessions.service import SessionService

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PROBLEMS: ProblemRows = {UnreadableForm: ProblemType(422, "VALIDATION_ERROR", "Validation error")}
LoginDep = Annotated[LoginFlow, Depends(provider(LoginFlow))]
AccountsDep = Annotated[AccountService, Depends(provider(AccountService))]
PasswordsDep = Annotated[PasswordService, Depends(provider(PasswordService))]
SessionsDep = Annotated[SessionService, Depends(provider(SessionService))]
AuditDep = Annotated[AuditService, Depends(provider(AuditService))]
ACCOUNT = "/account"
DEVICE_COOKIE = "bastion_device"
DEVICE_COOKIE_PATH = "/login"
DEVICE_COOKIE_MAX_AGE = 400 * 86400
EVENTS_PER_PAGE = 20
MAX_CURSOR = 2**63 - 1  # a row id: a signed 64-bit integer on PostgreSQL
VERIFY = "/verify-email"
RESET = "/reset-password"


@router.get("/")
async def home(request: Request, principal: MaybeSignedIn) -> Response:
    return redirect(request, ACCOUNT if principal else "/login")


def _email(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except InvalidEmailAddress:
        return None


def _destination(request: Request, return_to: str | None) -> str | None:
    return safe_destination(return_to, pages_of(request).redirect_origins)


# -- Signing in and out ------------------------------------------------------------------------


@router.get("/login")
async def login_page(
    request: Request, principal: MaybeSignedIn, return_to: str | None = None
) -> Response:
    destination = _destination(request, return_to)
    if principal is not None:
        return redirect(request, destination or ACCOUNT)
    return render(request, "login.html", return_to=destination or "", email="", problem=None)


@router.post("/login", dependencies=[FormChecked])
async def log_in(request: Request, flow: LoginDep, context: ContextDep) -> Response:
    form = form_of(request)
    destination = _destination(request, form.get("return_to"))
    typed = form.get("email", "")
    password = form.get("password", "")

    def again(problem: str, status_code: int) -> Response:
        return render(
            request,
            "login.html",
            status_code,
            return_to=destination or "",
            email=typed[:320],
            problem=problem,
        )

    email = _email(typed)
    if email is None or not password or len(password) > MAX_PASSWORD_LENGTH:
        return again("invalid", 401 if email else 422)
    usage, admission = await flow.admit(email, context, request.cookies.get(DEVICE_COOKIE))
    try:
        enforce(request, usage)
        result = await flow.log_in(
            admission, password, form.get("remember_me") == "on", context, browser=True
        )
    except InvalidCredentials:
        return again("invalid", 401)
    except EmailNotVerified:
        return again("unverified", 403)
    except AccountDisabled:
        return again("disabled", 403)
    except SecondFactorRequired:
        # The pages have no second-factor step yet (the hosted pages issue): the API has.
        return again("second_factor", 403)
    except SecurityStateChanged:
        return again("changed", 409)
    except RateLimited as blocked:
        response = again("blocked", 429)
        response.headers["Retry-After"] = str(blocked.retry_after)
        return response
    pages = pages_of(request)
    response = redirect(request, destination or ACCOUNT)
    session = result.tokens.session
    lifetime = int((session.expires_at - session.created_at).total_seconds())
    set_session_cookie(
        response,
        pages,
        result.tokens.browser_token or "",  # always issued for browser=True
        lifetime if session.remember_me else None,
    )
    response.set_cookie(
        DEVICE_COOKIE,
        result.device_cookie,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path=DEVICE_COOKIE_PATH,
        secure=pages.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout", dependencies=[FormChecked])
async def log_out(
    request: Request, principal: MaybeSignedIn, sessions: SessionsDep, context: ContextDep
) -> Response:
    if principal is not None:
        await sessions.logout(principal, context)
    response = redirect(request, "/login")
    clear_session_cookie(response, pages_of(request))
    return response


# -- Signing up --------------------------------------------------------------------------------


def _rules(request: Request) -> tuple[str, ...]:
    return tuple(rule.value for rule in requirements(pages_of(request).policy))


@router.get("/register")
async def register_page(request: Request, principal: MaybeSignedIn) -> Response:
    if principal is not None:
        return redirect(request, ACCOUNT)
    return render(request, "register.html", rules=_rules(request), email="", problems={})


@router.post("/register", dependencies=[FormChecked, RegistrationLimit])
async def register(request: Request, accounts: AccountsDep, context: ContextDep) -> Response:
    form = form_of(request)
    typed = form.get("email", "")
    password = form.get("password", "")
    email = _email(typed)
    problems: dict[str, str | tuple[str, ...]] = {}
    if email is None:
        problems["email"] = "invalid"
    if not password:
        problems["password"] = "missing"  # noqa: S105 - the kind of problem, not a password
    if email is not None and password:
        try:
            await accounts.register(email, password, context)
        except WeakPassword as weak:
            problems["password"] = weak.rules
        else:
            return render(request, "check_inbox.html", email=email, purpose="register")
    return render(
        request,
        "register.html",
        422,
        rules=_rules(request),
        email=typed[:320],
        problems=problems,
    )


# -- The pages emailed links open --------------------------------------------------------------


def _link_token(request: Request, path: str) -> str | None:
    return usable_token(request.cookies.get(link_cookie(path)))


def _keep_link(request: Request, path: str, token: str, max_age: int) -> Response:
    """Move the link's token out of the URL into a cookie for the page, and show the page."""
    pages = pages_of(request)
    response = redirect(request, path)
    usable = usable_token(token)
    if usable is None:
        clear_link_cookie(response, pages, path)
    else:
        set_link_cookie(response, pages, path, usable, max_age)
    return response


def _link_used(
    request: Request, path: str, template: str, status_code: int, state: str
) -> Response:
    response = render(request, template, status_code, state=state, problems={}, rules=())
    clear_link_cookie(response, pages_of(request), path)
    return response


@router.get(VERIFY)
async def verify_email_page(request: Request, token: str | None = None) -> Response:
    if token is not None:
        return _keep_link(request, VERIFY, token, pages_of(request).verification_link_seconds)
    state = "ready" if _link_token(request, VERIFY) else "missing"
    return render(request, "verify_email.html", state=state)


@router.post(VERIFY, dependencies=[FormChecked, PerIpLimit])
async def verify_email(request: Request, accounts: AccountsDep, context: ContextDep) -> Response:
    token = _link_token(request, VERIFY)
    if token is None:
        return render(request, "verify_email.html", 400, state="missing")
    try:
        await accounts.verify_email(token, context)
    except EmailAlreadyVerified:
        return _link_used(request, VERIFY, "verify_email.html", 200, "already")
    except TokenExpired:
        return _link_used(request, VERIFY, "verify_email.html", 410, "expired")
    except TokenInvalid:
        return _link_used(request, VERIFY, "verify_email.html", 400, "invalid")
    return _link_used(request, VERIFY, "verify_email.html", 200, "confirmed")


async def _email_request(request: Request, template: str, rule: Rule) -> str | Response:
    """The address a "mail me a link" form asks about, counted against ``rule``; or the form
    again, when it is no address."""
    email = _email(form_of(request).get("email", ""))
    if email is None:
        typed = form_of(request).get("email", "")[:320]
        return render(request, template, 422, email=typed, problems={"email": "invalid"})
    await limit_per_email(request, rule, email)
    return email


@router.get(f"{VERIFY}/resend")
async def resend_page(request: Request) -> Response:
    return render(request, "resend.html", email="", problems={})


@router.post(f"{VERIFY}/resend", dependencies=[FormChecked, PerIpLimit])
async def resend(request: Request, accounts: AccountsDep, context: ContextDep) -> Response:
    rule = provided(request, RateLimits).rules.verification_resend
    email = await _email_request(request, "resend.html", rule)
    if isinstance(email, Response):
        return email
    await accounts.resend_verification(email, context)
    return render(request, "check_inbox.html", email=email, purpose="resend")


@router.get("/forgot-password")
async def forgot_password_page(request: Request) -> Response:
    return render(request, "forgot_password.html", email="", problems={})


@router.post("/forgot-password", dependencies=[FormChecked, PerIpLimit])
async def forgot_password(
    request: Request, passwords: PasswordsDep, context: ContextDep
) -> Response:
    rule = provided(request, RateLimits).rules.forgot_password
    email = await _email_request(request, "forgot_password.html", rule)
    if isinstance(email, Response):
        return email
    await passwords.forgot_password(email, context)
    return render(request, "check_inbox.html", email=email, purpose="reset")


@router.get(RESET)
async def reset_password_page(request: Request, token: str | None = None) -> Response:
    if token is not None:
        return _keep_link(request, RESET, token, pages_of(request).reset_link_seconds)
    state = "ready" if _link_token(request, RESET) else "missing"
    return render(request, "reset_password.html", state=state, rules=_rules(request), problems={})


@router.post(RESET, dependencies=[FormChecked, PerIpLimit])
async def reset_password(
    request: Request, passwords: PasswordsDep, context: ContextDep
) -> Response:
    token = _link_token(request, RESET)
    if token is None:
        return render(request, "reset_password.html", 400, state="missing", rules=(), problems={})
    new_password = form_of(request).get("new_password", "")
    try:
        if not new_password:
            raise WeakPassword(rules=("too_short",))
        await passwords.reset_password(token, new_password, context)
    except WeakPassword as weak:
        return render(
            request,
            "reset_password.html",
            422,
            state="ready",
            rules=_rules(request),
            problems={"new_password": weak.rules},
        )
    except TokenExpired:
        return _link_used(request, RESET, "reset_password.html", 410, "expired")
    except TokenInvalid:
        return _link_used(request, RESET, "reset_password.html", 400, "invalid")
    response = _link_used(request, RESET, "reset_password.html", 200, "done")
    # Every session ended with the reset, this browser's included.
    clear_session_cookie(response, pages_of(request))
    return response


# -- The account -------------------------------------------------------------------------------


@router.get(ACCOUNT)
async def account_page(request: Request, principal: SignedIn, accounts: AccountsDep) -> Response:
    user = await accounts.get_user(principal.user_id)
    return render(request, "account.html", user=user)


@router.get(f"{ACCOUNT}/sessions")
async def sessions_page(request: Request, principal: SignedIn, sessions: SessionsDep) -> Response:
    rows = [
        (session, device_of(session.user_agent), session.id == principal.session_id)
        for session in await sessions.list_sessions(principal.user_id)
    ]
    return render(request, "sessions.html", rows=rows)


@router.post(f"{ACCOUNT}/sessions", dependencies=[FormChecked])
async def end_sessions(
    request: Request, principal: SignedIn, sessions: SessionsDep, context: ContextDep
) -> Response:
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))
    form = form_of(request)
    if form.get("end") == "others":
        await sessions.revoke_others(principal, context)
        return redirect(request, f"{ACCOUNT}/sessions")
    try:
        session_id = uuid.UUID(form.get("session_id", ""))
    except ValueError:
        raise SessionNotFound() from None
    try:
        await sessions.revoke_session(principal, session_id, context)
    except SessionNotFound:
        pass  # ended already: the list shows it gone either way
    if session_id != principal.session_id:
        return redirect(request, f"{ACCOUNT}/sessions")
    response = redirect(request, "/login")
    clear_session_cookie(response, pages_of(request))
    return response


@router.get(f"{ACCOUNT}/activity")
async def activity_page(
    request: Request, principal: SignedIn, audit: AuditDep, before: str | None = None
) -> Response:
    digits = before if before and len(before) <= 19 and before.isascii() else ""
    cursor = int(digits) if digits.isdigit() else None
    if cursor is not None and not 0 < cursor <= MAX_CURSOR:
        cursor = None
    page = await audit.security_events(principal.user_id, limit=EVENTS_PER_PAGE, before=cursor)
    events = [(item, device_of(item.user_agent)) for item in page.items]
    return render(request, "activity.html", events=events, next_cursor=page.next_cursor)


@router.get("/assets/{name}")
async def asset(request: Request, name: str) -> Response:
    found = provided(request, Pages).views.assets.get(name)
    if found is None:
        return Response(status_code=404)
    headers = {"Cache-Control": "public, max-age=86400", "ETag": f'"{found.version}"'}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    if found.media_type.startswith("image/svg"):
        # Opened on its own, an SVG is a document: it may run nothing.
        headers["Content-Security-Policy"] = "default-src 'none'"
    return Response(found.content, media_type=found.media_type, headers=headers)
