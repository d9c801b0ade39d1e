"""The one table from domain errors to HTTP statuses and stable codes, and the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route

from bastion.accounts.errors import EmailTaken, WeakPassword
from bastion.adapters.sql.unit_of_work import is_unavailable
from bastion.admin.errors import InvalidCursor, LastAdmin, UserNotFound
from bastion.core.errors import (
    BastionError,
    Conflict,
    Forbidden,
    NotFound,
    StorageUnavailable,
    Unauthenticated,
)
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.http.problems import PROBLEM_JSON, problem
from bastion.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.sessions.errors import (
    AccountDisabled,
    CsrfRejected,
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    SessionRevoked,
)
from bastion.tokens.errors import AccessTokenExpired, InvalidToken

log = structlog.get_logger("bastion.http")
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
RETRY_LATER_SECONDS = "5"
# The order methods are listed in an Allow header.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    code: str
    title: str
    bearer: bool = False


# Problems of the HTTP layer itself (input, routing, framing), whoever raises them: the same
# status always has the same code and title.
VALIDATION_ERROR = ProblemType(422, "VALIDATION_ERROR", "Validation error")
MALFORMED_JSON = ProblemType(400, "MALFORMED_JSON", "Malformed JSON")
HTTP_PROBLEMS = {
    kind.status: kind
    for kind in (
        ProblemType(400, "BAD_REQUEST", "Bad request"),
        ProblemType(404, "NOT_FOUND", "Not found"),
        ProblemType(405, "METHOD_NOT_ALLOWED", "Method not allowed"),
        ProblemType(408, "REQUEST_TIMEOUT", "Request timeout"),
        ProblemType(413, "PAYLOAD_TOO_LARGE", "Payload too large"),
        ProblemType(415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    )
}


PROBLEM_TYPES: dict[type[BastionError], ProblemType] = {
    WeakPassword: ProblemType(422, "WEAK_PASSWORD", "Password too weak"),
    TokenInvalid: ProblemType(400, "TOKEN_INVALID", "Invalid link"),
    TokenExpired: ProblemType(410, "TOKEN_EXPIRED", "Link expired"),
    InvalidCredentials: ProblemType(401, "INVALID_CREDENTIALS", "Invalid credentials"),
    EmailNotVerified: ProblemType(403, "EMAIL_NOT_VERIFIED", "Email not verified"),
    AccountDisabled: ProblemType(403, "ACCOUNT_DISABLED", "Account disabled"),
    InvalidToken: ProblemType(401, "INVALID_TOKEN", "Invalid access token", bearer=True),
    AccessTokenExpired: ProblemType(401, "TOKEN_EXPIRED", "Access token expired", bearer=True),
    SessionRevoked: ProblemType(401, "SESSION_REVOKED", "Session revoked", bearer=True),
    InvalidRefreshToken: ProblemType(401, "INVALID_REFRESH_TOKEN", "Invalid refresh token"),
    RefreshTokenReused: ProblemType(401, "REFRESH_TOKEN_REUSED", "Refresh token reused"),
    SessionNotFound: ProblemType(404, "SESSION_NOT_FOUND", "Session not found"),
    CsrfRejected: ProblemType(403, "CSRF_REJECTED", "Cross-site request rejected"),
    EmailTaken: ProblemType(409, "EMAIL_TAKEN", "Email already registered"),
    UserNotFound: ProblemType(404, "USER_NOT_FOUND", "User not found"),
    LastAdmin: ProblemType(409, "LAST_ADMIN", "Last active admin"),
    InvalidCursor: ProblemType(400, "INVALID_CURSOR", "Invalid cursor"),
    TooManyAttempts: ProblemType(429, "TOO_MANY_ATTEMPTS", "Too many attempts"),
    RateLimited: ProblemType(429, "RATE_LIMITED", "Too many requests"),
    StorageUnavailable: ProblemType(503, "SERVICE_UNAVAILABLE", "Service unavailable"),
    NotFound: ProblemType(404, "NOT_FOUND", "Not found"),
    Forbidden: ProblemType(403, "FORBIDDEN", "Forbidden"),
    Conflict: ProblemType(409, "CONFLICT", "Conflict"),
    Unauthenticated: ProblemType(401, "UNAUTHENTICATED", "Authentication required", bearer=True),
    BastionError: ProblemType(400, "BAD_REQUEST", "Bad request"),
}


def problem_type(error: type[BastionError]) -> ProblemType:
    """The entry for the most specific class of ``error`` in the table."""
    for cls in error.__mro__:
        if cls in PROBLEM_TYPES:
            return PROBLEM_TYPES[cls]
    raise LookupError(error)


def problem_for(error: BastionError) -> Response:
    kind = problem_type(type(error))
    headers: dict[str, str] = {}
    if kind.bearer:
        headers.update(BEARER_CHALLENGE)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    elif kind.status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers["Retry-After"] = RETRY_LATER_SECONDS
    return problem(kind.status, kind.code, kind.title, error.detail, headers=headers)


def openapi_responses(*errors: type[BastionError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting every error code a route can return."""
    by_status: dict[int, list[ProblemType]] = {}
    for error in (*errors, StorageUnavailable):
        kind = problem_type(error)
        by_status.setdefault(kind.status, []).append(kind)
    return {status: problem_response(kinds) for status, kinds in sorted(by_status.items())}


def problem_response(kinds: list[ProblemType]) -> dict[str, Any]:
    """One OpenAPI response: problem documents of one status, naming each of their codes."""
    status = kinds[0].status
    codes = ", ".join(f"`{k.code}`" for k in kinds)
    return {
        "description": f"{HTTPStatus(status).phrase}: {codes}",
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": {
                    "type": f"urn:bastion:problem:{kinds[0].code.lower().replace('_', '-')}",
                    "title": kinds[0].title,
                    "status": status,
                    "detail": "…",
                    "code": kinds[0].code,
                },
            }
        },
    }


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _domain_error(_: Request, exc: Exception) -> Response:
    return problem_for(cast(BastionError, exc))


async def _validation_error(_: Request, exc: Exception) -> Response:
    errors = cast(RequestValidationError, exc).errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return malformed_json()
    # Never echo the submitted values: FastAPI's default "input" member would return passwords.
    return validation_problem(
        [
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": error.get("msg", ""),
                "type": error.get("type", ""),
            }
            for error in errors
        ]
    )


def validation_problem(fields: list[dict[str, Any]]) -> Response:
    """The 422 for invalid input: each field's location, message and error type."""
    kind = VALIDATION_ERROR
    return problem(
        kind.status,
        kind.code,
        kind.title,
        "; ".join(f"{'.'.join(f['loc'][1:]) or f['loc'][0]}: {f['msg']}" for f in fields),
        errors=fields,
    )


def malformed_json() -> Response:
    kind = MALFORMED_JSON
    return problem(kind.status, kind.code, kind.title, "The request body is not valid JSON.")


async def _http_error(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    if exc.status_code == HTTPStatus.BAD_REQUEST and isinstance(
        exc.__cause__, ValueError | RecursionError
    ):
        # FastAPI's answer to a body json.loads could not read (a number over 4300 digits,
        # nesting deeper than the parser goes, text that is not UTF-8).
        return malformed_json()
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = ", ".join(allowed_methods(request))
    detail = exc.detail if isinstance(exc.detail, str) else None
    return http_problem(exc.status_code, detail, headers=headers)


def http_problem(
    status: int, detail: str | None = None, *, headers: dict[str, str] | None = None
) -> Response:
    """The problem document of an HTTP-level error, with its one code and title."""
    known = HTTPStatus(status)
    kind = HTTP_PROBLEMS.get(status) or ProblemType(status, f"HTTP_{status}", known.phrase)
    return problem(status, kind.code, kind.title, detail or known.description, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path; Starlette's 405 names only one route's."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")
    return [method for method in METHOD_ORDER if method in methods] + sorted(
        methods.difference(METHOD_ORDER)
    )


def unexpected_error(exc: Exception) -> Response:
    """The response to an exception nothing else handled: 503 for a lost database, else 500."""
    if is_unavailable(exc):
        log.error("database.unavailable", error=type(exc).__name__)
        return problem_for(StorageUnavailable())
    log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "Something went wrong on our side.")
