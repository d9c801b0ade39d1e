"""The hosted pages. Each form posts to its own page (the sign-out button and the unverified
sign-in's resend form aside), and each handler runs the same use case as the JSON API: the
log-in flow with its limits and lockouts, the accounts, passwords, sessions and audit services.

Pages work without JavaScript; pages.js only enhances them. No secret travels in a URL: the
token of an emailed link is moved into a cookie for its page at once, and the form posts.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from markupsafe import Markup

from bastion.accounts.errors import EmailAlreadyVerified, EmailTaken, SecurityStateChanged
from bastion.accounts.service import AccountService
from bastion.audit.service import AuditService
from bastion.core.context import Principal, RequestContext
from bastion.core.email_address import InvalidEmailAddress, normalize_email
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.core.origins import safe_destination
from bastion.guards import (
    PerIpLimit,
    RegistrationLimit,
    enforce,
    limit_per_email,
    limit_per_ip,
)
from bastion.http.deps import ContextDep, provided, provider
from bastion.http.errors import ProblemRows, ProblemType
from bastion.login.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    SecondFactorRequired,
)
from bastion.login.service import LoggedIn, LoginFlow
from bastion.mfa.errors import (
    FactorNotFound,
    InvalidCredential,
    InvalidEnrolmentCode,
    InvalidMfaCode,
    InvalidRegistration,
    MfaRequiredByRole,
    MfaTokenInvalid,
    ReauthenticationRequired,
    SecondStepsPaused,
)
from bastion.mfa.model import (
    FACTOR_NAME_MAX_LENGTH,
    RECOVERY_CODES_PER_SET,
    Aal,
    SecondStep,
    after_second_step,
    assurance_of,
    normalize_recovery_code,
)
from bastion.mfa.service import MfaService
from bastion.owners.model import export_document
from bastion.owners.service import OwnerService
from bastion.pages.browser import (
    PAGE_HEADERS,
    FormChecked,
    FormNotUnderstood,
    MaybeSignedIn,
    PageRoute,
    SignedIn,
    UnreadableForm,
    clear_link_cookie,
    clear_session_cookie,
    current_user,
    form_of,
    json_answer,
    link_cookie,
    pages_of,
    redirect,
    render,
    set_link_cookie,
    set_session_cookie,
)
from bastion.pages.model import device_of, usable_token
from bastion.pages.views import Pages
from bastion.passwords.errors import WeakPassword, WrongPassword
from bastion.passwords.policy import MAX_PASSWORD_LENGTH, requirements
from bastion.passwords.service import PasswordService
from bastion.ratelimit.errors import RateLimited
from bastion.ratelimit.model import Rule
from bastion.ratelimit.service import RateLimits
from bastion.sessions.errors import SessionNotFound
from bastion.sessions.service import SessionService

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PROBLEMS: ProblemRows = {
    UnreadableForm: ProblemType(422, "VALIDATION_ERROR", "Validation error"),
    FormNotUnderstood: ProblemType(422, "VALIDATION_ERROR", "Validation error"),
}
LoginDep = Annotated[LoginFlow, Depends(provider(LoginFlow))]
AccountsDep = Annotated[AccountService, Depends(provider(AccountService))]
PasswordsDep = Annotated[PasswordService, Depends(provider(PasswordService))]
SessionsDep = Annotated[SessionService, Depends(provider(SessionService))]
AuditDep = Annotated[AuditService, Depends(provider(AuditService))]
MfaDep = Annotated[MfaService, Depends(provider(MfaService))]
OwnersDep = Annotated[OwnerService, Depends(provider(OwnerService))]
ACCOUNT = "/account"
DEVICE_COOKIE = "bastion_device"
DEVICE_COOKIE_PATH = "/login"
DEVICE_COOKIE_MAX_AGE = 400 * 86400
EVENTS_PER_PAGE = 20
MAX_CURSOR = 2**63 - 1  # a row id: a signed 64-bit integer on PostgreSQL
VERIFY = "/verify-email"
RESET = "/reset-password"
LOGIN_MFA = "/login/mfa"
SECURITY = f"{ACCOUNT}/security"
# A WebAuthn credential as PublicKeyCredential.toJSON() shapes it, posted in one form field.
MAX_CREDENTIAL_LENGTH = 16384
MAX_CODE_LENGTH = 64
# The fields of the action a "Confirm it's you" step holds while it asks.
THEN = "then."
UNHELD_FIELDS = frozenset({"csrf_token", "password", "current_password", "new_password"})
CONFIRM_EMAIL = "/confirm-email"
ACCEPT_INVITE = "/accept-invite"


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
async def log_in(request: Request, flow: LoginDep, mfa: MfaDep, context: ContextDep) -> Response:
    form = form_of(request)
    destination = _destination(request, form.get("return_to"))
    if form.get("intent") == "passkey_options":
        await limit_per_ip(request)
        return json_answer(request, await mfa.passkey_options())
    if form.get("credential"):  # the script asked a passkey
        await limit_per_ip(request)
        return await _passkey_sign_in(request, flow, context, destination)
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
    except SecondFactorRequired as due:
        return _second_step_due(request, due, destination)
    except SecurityStateChanged:
        return again("changed", 409)
    except RateLimited as blocked:
        response = again("blocked", 429)
        response.headers["Retry-After"] = str(blocked.retry_after)
        return response
    return _signed_in(request, result, destination)


def _signed_in(request: Request, result: LoggedIn, destination: str | None) -> Response:
    """The answer to every sign-in on the pages: the session's cookie, the device cookie of
    account protection, and the way on."""
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


def _credential(form: dict[str, str]) -> dict[str, Any] | None:
    """The WebAuthn credential a page's script put in the form, if it is a JSON object."""
    raw = form.get("credential", "")
    if not raw:
        return None
    try:
        parsed = json.loads(raw) if len(raw) <= MAX_CREDENTIAL_LENGTH else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise FormNotUnderstood()
    return parsed


async def _passkey_sign_in(
    request: Request, flow: LoginFlow, context: ContextDep, destination: str | None
) -> Response:
    """A sign-in with a passkey alone (the script of /login asked the authenticator)."""
    form = form_of(request)

    def again(problem: str, status_code: int) -> Response:
        return render(
            request,
            "login.html",
            status_code,
            return_to=destination or "",
            email="",
            problem=problem,
        )

    credential = _credential(form) or {}
    try:
        result = await flow.passkey_login(
            credential, form.get("remember_me") == "on", context, browser=True
        )
    except InvalidCredential:
        return again("passkey", 401)
    except EmailNotVerified:
        return again("unverified", 403)
    except AccountDisabled:
        return again("disabled", 403)
    except SecurityStateChanged:
        return again("changed", 409)
    return _signed_in(request, result, destination)


def _second_step_due(
    request: Request, due: SecondFactorRequired, destination: str | None
) -> Response:
    """The password was right and the account has a second factor: on to /login/mfa, with the
    mfa_token in a cookie for that page only (never in the URL)."""
    target = LOGIN_MFA if destination is None else f"{LOGIN_MFA}?return_to={quote(destination)}"
    response = redirect(request, target)
    set_link_cookie(response, pages_of(request), LOGIN_MFA, due.mfa_token, due.expires_in)
    return response


@router.get(LOGIN_MFA)
async def second_step_page(
    request: Request, principal: MaybeSignedIn, return_to: str | None = None
) -> Response:
    destination = _destination(request, return_to)
    if principal is not None:
        return redirect(request, destination or ACCOUNT)
    if _link_token(request, LOGIN_MFA) is None:
        return redirect(request, "/login")
    return render(request, "login_mfa.html", return_to=destination or "", problem=None)


@router.post(LOGIN_MFA, dependencies=[FormChecked, PerIpLimit])
async def second_step(
    request: Request, flow: LoginDep, mfa: MfaDep, context: ContextDep
) -> Response:
    form = form_of(request)
    destination = _destination(request, form.get("return_to"))
    token = _link_token(request, LOGIN_MFA)

    def again(problem: str, status_code: int) -> Response:
        return render(
            request, "login_mfa.html", status_code, return_to=destination or "", problem=problem
        )

    def start_over() -> Response:
        response = render(
            request, "login.html", 401, return_to=destination or "", email="", problem="expired"
        )
        clear_link_cookie(response, pages_of(request), LOGIN_MFA)
        return response

    if token is None:
        return start_over()
    if form.get("intent") == "webauthn_options":
        try:
            return json_answer(request, await mfa.login_assertion_options(token))
        except MfaTokenInvalid:
            return json_answer(request, {"code": "MFA_TOKEN_INVALID"}, 401)
    credential = _credential(form)
    code = form.get("code", "")
    if credential is None and not code.strip():
        return again("missing", 422)
    if len(code) > MAX_CODE_LENGTH:
        return again("code", 401)
    try:
        result = await flow.complete_second_step(
            token,
            context,
            code=None if credential is not None else code,
            credential=credential,
            browser=True,
        )
    except InvalidMfaCode:
        return again("code", 401)
    except InvalidCredential:
        return again("key", 401)
    except MfaTokenInvalid:
        return start_over()
    except SecondStepsPaused as paused:
        response = again("blocked", 429)
        response.headers["Retry-After"] = str(paused.retry_after)
        return response
    except SecurityStateChanged:
        return start_over()
    response = _signed_in(request, result, destination)
    clear_link_cookie(response, pages_of(request), LOGIN_MFA)
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


@router.get(CONFIRM_EMAIL)
async def confirm_email_page(request: Request, token: str | None = None) -> Response:
    """Changes nothing: the page's button posts the token."""
    if token is not None:
        seconds = pages_of(request).email_change_link_seconds
        return _keep_link(request, CONFIRM_EMAIL, token, seconds)
    kept = _link_token(request, CONFIRM_EMAIL)
    return render(request, "confirm_email.html", state="ready" if kept else "missing", token=kept)


@router.post(CONFIRM_EMAIL, dependencies=[FormChecked, PerIpLimit])
async def confirm_email(request: Request, owners: OwnersDep, context: ContextDep) -> Response:
    token = usable_token(form_of(request).get("token"))
    if token is None:
        return render(request, "confirm_email.html", 400, state="missing", token=None)

    def used(status_code: int, state: str) -> Response:
        response = render(request, "confirm_email.html", status_code, state=state, token=None)
        clear_link_cookie(response, pages_of(request), CONFIRM_EMAIL)
        return response

    try:
        await owners.confirm_email_change(token, context)
    except TokenExpired:
        return used(410, "expired")
    except TokenInvalid:
        return used(400, "invalid")
    except EmailTaken:
        return used(409, "taken")
    response = used(200, "confirmed")
    # Every session ended with the change, this browser's included.
    clear_session_cookie(response, pages_of(request))
    return response


@router.get(ACCEPT_INVITE)
async def accept_invite_page(request: Request, token: str | None = None) -> Response:
    if token is not None:
        seconds = pages_of(request).invite_link_seconds
        return _keep_link(request, ACCEPT_INVITE, token, seconds)
    kept = _link_token(request, ACCEPT_INVITE)
    return render(
        request,
        "accept_invite.html",
        state="ready" if kept else "missing",
        token=kept,
        rules=_rules(request),
        problems={},
    )


@router.post(ACCEPT_INVITE, dependencies=[FormChecked, PerIpLimit])
async def accept_invite(request: Request, owners: OwnersDep, context: ContextDep) -> Response:
    form = form_of(request)
    token = usable_token(form.get("token"))

    def show(status_code: int, state: str, **values: object) -> Response:
        values = {"token": None, "rules": (), "problems": {}, **values}
        response = render(request, "accept_invite.html", status_code, state=state, **values)
        if state != "ready":
            clear_link_cookie(response, pages_of(request), ACCEPT_INVITE)
        return response

    if token is None:
        return show(400, "missing")
    password = form.get("password", "")
    try:
        if not password:
            raise WeakPassword(rules=("too_short",))
        await owners.accept_invitation(token, password, context)
    except WeakPassword as weak:
        return show(
            422, "ready", token=token, rules=_rules(request), problems={"password": weak.rules}
        )
    except TokenExpired:
        return show(410, "expired")
    except TokenInvalid:
        return show(400, "invalid")
    return show(200, "done")


# -- The account -------------------------------------------------------------------------------


@router.get(ACCOUNT)
async def account_page(request: Request, principal: SignedIn, accounts: AccountsDep) -> Response:
    user = await accounts.get_user(principal.user_id)
    return render(request, "account.html", user=user, new_email="", problem=None, sent_to=None)


@router.post(ACCOUNT, dependencies=[FormChecked])
async def change_email(
    request: Request,
    principal: SignedIn,
    accounts: AccountsDep,
    owners: OwnersDep,
    mfa: MfaDep,
    flow: LoginDep,
    context: ContextDep,
) -> Response:
    """Ask to change the address: the new one gets a link (/confirm-email) that makes it so."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))
    if form_of(request).get("intent") == "reauth_options":
        return json_answer(
            request, await mfa.assertion_options(principal.user_id, verify_user=True)
        )
    step = await confirm_step(request, principal, mfa, flow, context)
    if step is not None:
        return step
    user = await accounts.get_user(principal.user_id)
    typed = form_of(request).get("new_email", "")
    new_email = _email(typed)
    if new_email is None or new_email == user.email:
        problem = "invalid" if new_email is None else "same"
        return render(
            request,
            "account.html",
            422,
            user=user,
            new_email=typed[:320],
            problem=problem,
            sent_to=None,
        )
    await owners.request_email_change(principal.user_id, new_email, context)
    return render(request, "account.html", user=user, new_email="", problem=None, sent_to=new_email)


# -- The account's data: download it, or delete the account --------------------------------

ACCOUNT_DATA = f"{ACCOUNT}/data"


@router.get(ACCOUNT_DATA)
async def data_page(request: Request, principal: SignedIn) -> Response:
    return render(request, "data.html")


@router.post(ACCOUNT_DATA, dependencies=[FormChecked])
async def use_data(
    request: Request,
    principal: SignedIn,
    owners: OwnersDep,
    mfa: MfaDep,
    flow: LoginDep,
    context: ContextDep,
) -> Response:
    """Download my data (5 an hour), or delete my account: deleting always asks to confirm
    it's you first, however recent the sign-in."""
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))
    if form_of(request).get("intent") == "reauth_options":
        return json_answer(
            request, await mfa.assertion_options(principal.user_id, verify_user=True)
        )
    form = form_of(request)
    deleting = form.get(f"{THEN}intent", form.get("intent")) == "delete"
    step = await confirm_step(request, principal, mfa, flow, context, always=deleting)
    if step is not None:
        return step
    intent = form_of(request).get("intent")
    if intent == "export":
        enforce(request, await limits.per_user(limits.rules.export, principal.user_id))
        data = await owners.export(principal.user_id, context)
        filename = f"bastion-export-{data.exported_at:%Y%m%dT%H%M%SZ}.json"
        return Response(
            json.dumps(export_document(data), ensure_ascii=False, indent=2),
            media_type="application/json",
            headers={
                **PAGE_HEADERS,
                "Content-Disposition": f'attachment; filename="{filename}"',
            },
        )
    if intent == "delete":
        await owners.delete_account(principal.user_id, context)
        request.state.principal = None  # signed out with it: no account menu
        response = render(request, "account_deleted.html")
        clear_session_cookie(response, pages_of(request))
        return response
    raise FormNotUnderstood()


# -- The account's security: password, second factors, recovery codes ----------------------

SECURITY_DONE = ("password", "totp", "key", "renamed", "removed", "confirmed")


async def _security_page(
    request: Request,
    principal: Principal,
    mfa: MfaService,
    status_code: int = 200,
    *,
    problems: dict[str, str | tuple[str, ...]] | None = None,
    done: str | None = None,
) -> Response:
    user = await mfa.account(principal.user_id)
    return render(
        request,
        "security.html",
        status_code,
        user=user,
        mfa=await mfa.status(user),
        rules=_rules(request),
        problems=problems or {},
        done=done if done in SECURITY_DONE else None,
    )


@router.get(SECURITY)
async def security_page(
    request: Request, principal: SignedIn, mfa: MfaDep, done: str | None = None
) -> Response:
    return await _security_page(request, principal, mfa, done=done)


@router.post(SECURITY, dependencies=[FormChecked])
async def change_security(
    request: Request,
    principal: SignedIn,
    mfa: MfaDep,
    flow: LoginDep,
    passwords: PasswordsDep,
    sessions: SessionsDep,
    context: ContextDep,
) -> Response:
    limits = provided(request, RateLimits)
    enforce(request, await limits.per_user(limits.rules.per_user, principal.user_id))
    intent = form_of(request).get("intent")
    if intent == "download":
        return _recovery_codes_file(form_of(request))
    if intent == "reauth_options":
        return json_answer(
            request, await mfa.assertion_options(principal.user_id, verify_user=True)
        )
    if intent == "webauthn_options":
        if not await _recent(principal, mfa):
            return json_answer(request, {"code": "REAUTHENTICATION_REQUIRED"}, 403)
        user = await mfa.account(principal.user_id)
        passkey = form_of(request).get("passkey") != "false"
        return json_answer(request, await mfa.registration_options(user, passkey=passkey))
    if intent == "password":
        proven = await _password_proves_it(request, principal, mfa, flow, context)
        if isinstance(proven, Response):
            return proven
        principal = proven
    step = await confirm_step(request, principal, mfa, flow, context)
    if step is not None:
        return step
    form = form_of(request)
    intent = form.get("intent")
    user = await mfa.account(principal.user_id)
    if intent == "password":
        if "current_password" not in form:
            # Held by Confirm it's you, which never holds a password: type them again.
            return redirect(request, f"{SECURITY}?done=confirmed")
        try:
            await passwords.change_password(
                principal, form.get("current_password", ""), form.get("new_password", ""), context
            )
        except WrongPassword:
            return await _security_page(
                request, principal, mfa, 401, problems={"current_password": "wrong"}
            )
        except WeakPassword as weak:
            return await _security_page(
                request, principal, mfa, 422, problems={"new_password": weak.rules}
            )
        return redirect(request, f"{SECURITY}?done=password")
    if intent == "totp":
        enrolment = await mfa.start_totp_enrolment(user, form.get("name") or None)
        return render(
            request,
            "totp_setup.html",
            factor_id=enrolment.factor_id,
            secret=enrolment.secret,
            qr_svg=Markup(enrolment.qr_svg),  # noqa: S704 - segno's SVG of our own URI
            problem=None,
        )
    if intent == "totp_confirm":
        factor_id = _factor_id(form)
        try:
            enrolled = await mfa.confirm_totp(user, factor_id, form.get("code", ""), context)
        except InvalidEnrolmentCode:
            return render(
                request,
                "totp_setup.html",
                400,
                factor_id=factor_id,
                secret=None,
                qr_svg=None,
                problem="code",
            )
        await _at_aal2(sessions, principal, SecondStep.TOTP)
        return _after_enrolment(request, enrolled.recovery_codes, "totp")
    if intent == "webauthn_register":
        credential = _credential(form)
        if credential is None:
            # Reached without a key's answer: the step before asked to confirm it's you.
            return redirect(request, f"{SECURITY}?done=confirmed")
        try:
            added = await mfa.register_webauthn(user, form.get("name") or None, credential, context)
        except InvalidRegistration:
            return await _security_page(request, principal, mfa, 400, problems={"key": "invalid"})
        await _at_aal2(sessions, principal, SecondStep.WEBAUTHN)
        return _after_enrolment(request, added.recovery_codes, "key")
    if intent == "rename":
        name = form.get("name", "").strip()
        if not name or len(name) > FACTOR_NAME_MAX_LENGTH:
            return await _security_page(request, principal, mfa, 422, problems={"name": "invalid"})
        await mfa.rename(user, _factor_id(form), name, context)
        return redirect(request, f"{SECURITY}?done=renamed")
    if intent == "remove":
        try:
            await mfa.remove(user, _factor_id(form), context)
        except MfaRequiredByRole:
            return await _security_page(request, principal, mfa, 409, problems={"factor": "last"})
        return redirect(request, f"{SECURITY}?done=removed")
    if intent == "regenerate":
        codes = await mfa.regenerate_recovery_codes(user, context)
        return render(request, "recovery_codes.html", codes=codes, first=False)
    raise FormNotUnderstood()


def _factor_id(form: dict[str, str]) -> uuid.UUID:
    try:
        return uuid.UUID(form.get("factor_id", ""))
    except ValueError:
        raise FactorNotFound() from None


def _after_enrolment(request: Request, codes: list[str] | None, done: str) -> Response:
    """A first factor brings recovery codes, shown once; a further one goes back to the page."""
    if codes:
        return render(request, "recovery_codes.html", codes=codes, first=True)
    return redirect(request, f"{SECURITY}?done={done}")


def _recovery_codes_file(form: dict[str, str]) -> Response:
    """The recovery codes the page just showed, as a text file to keep (no script needed: the
    page posts them back, and they are only ever in that page and this answer)."""
    codes = [form.get(f"code{i}", "") for i in range(RECOVERY_CODES_PER_SET)]
    if not all(normalize_recovery_code(code) for code in codes) or any(
        len(code) > MAX_CODE_LENGTH for code in codes
    ):
        raise FormNotUnderstood()
    return Response(
        "\n".join(codes) + "\n",
        media_type="text/plain; charset=utf-8",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": 'attachment; filename="recovery-codes.txt"',
        },
    )


async def _at_aal2(sessions: SessionService, principal: Principal, used: SecondStep) -> None:
    """The browser's session proved the factor just added: it is aal2 from now on."""
    assurance = after_second_step(assurance_of(principal.aal, principal.amr), used)
    await sessions.reassure(
        principal, Aal.AAL2.value, tuple(method.value for method in assurance.amr)
    )


async def _password_proves_it(
    request: Request,
    principal: Principal,
    mfa: MfaService,
    flow: LoginFlow,
    context: RequestContext,
) -> Principal | Response:
    """A password change knows the current password, which is all an account without a second
    factor proves when it confirms it's you: a session too old for the change is proven again
    with it (a wrong one counts as a failed sign-in), and no Confirm-it's-you step is shown."""
    if await _recent(principal, mfa) or await mfa.mfa_enabled(principal.user_id):
        return principal
    try:
        await flow.reauthenticate(
            principal, context, password=form_of(request).get("current_password", "")
        )
    except WrongPassword:
        return await _security_page(
            request, principal, mfa, 401, problems={"current_password": "wrong"}
        )
    del request.state.principal  # read again: the session holds the new proof
    return await current_user(request) or principal


async def _recent(principal: Principal, mfa: MfaService) -> bool:
    try:
        await mfa.ensure_recent(
            principal.user_id,
            auth_time=datetime.fromtimestamp(principal.auth_time, UTC),
            aal=assurance_of(principal.aal, principal.amr).aal,
        )
    except ReauthenticationRequired:
        return False
    return True


async def confirm_step(
    request: Request,
    principal: Principal,
    mfa: MfaService,
    flow: LoginFlow,
    context: RequestContext,
    *,
    always: bool = False,
) -> Response | None:
    """A "Confirm it's you" step before a change that needs a recent authentication (the rule of
    ``RecentUser``). None when the session is recent enough (and the change is not one that
    asks ``always``), or has just proven itself with the Confirm-it's-you form, whose held
    action then becomes the form to carry out; else that form, holding the action's fields."""
    form = form_of(request)
    if form.get("step") == "confirm":
        credential = _credential(form)
        password = form.get("password") or None
        code = form.get("code", "").strip() or None
        if password is None and credential is None:
            return await _confirm_page(request, principal, mfa, "missing", 422)
        try:
            await flow.reauthenticate(
                principal, context, password=password, code=code, credential=credential
            )
        except WrongPassword:
            return await _confirm_page(request, principal, mfa, "password", 401)
        except InvalidMfaCode:
            return await _confirm_page(request, principal, mfa, "code", 401)
        except InvalidCredential:
            return await _confirm_page(request, principal, mfa, "key", 401)
        held = {k.removeprefix(THEN): v for k, v in form.items() if k.startswith(THEN)}
        request.state.form = {**held, "csrf_token": form.get("csrf_token", "")}
        del request.state.principal  # read again: the session holds the new proof
        principal = await current_user(request) or principal
        if await _recent(principal, mfa):
            return None
    elif not always and await _recent(principal, mfa):
        return None
    return await _confirm_page(request, principal, mfa, None, 403)


async def _confirm_page(
    request: Request,
    principal: Principal,
    mfa: MfaService,
    problem: str | None,
    status_code: int,
) -> Response:
    form = form_of(request)
    if form.get("step") == "confirm":
        held = {k: v for k, v in form.items() if k.startswith(THEN)}
    else:
        # Never a password: the step's page would carry it. An action that needs one is asked
        # again once the step is passed.
        held = {f"{THEN}{k}": v for k, v in form.items() if k not in UNHELD_FIELDS}
    factors = (await mfa.status(await mfa.account(principal.user_id))).factors
    return render(
        request,
        "confirm.html",
        status_code,
        held=sorted(held.items()),
        second_factor=bool(factors),
        keys=any(f.type.value == "webauthn" for f in factors),
        problem=problem,
    )


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
