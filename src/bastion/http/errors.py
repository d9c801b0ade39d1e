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
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    code: str
    title: str
    bearer: bool = False


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
    responses: dict[int | str, dict[str, Any]] = {}
    for status, kinds in sorted(by_status.items()):
        codes = ", ".join(f"`{k.code}`" for k in kinds)
        responses[status] = {
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
    return responses


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _domain_error(_: Request, exc: Exception) -> Response:
    return problem_for(cast(BastionError, exc))


async def _validation_error(_: Request, exc: Exception) -> Response:
    errors = cast(RequestValidationError, exc).errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return problem(
            400, "MALFORMED_JSON", "Malformed JSON", "The request body is not valid JSON."
        )
    # Never echo the submitted values: FastAPI's default "input" member would return passwords.
    fields = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors
    ]
    return problem(
        422,
        "VALIDATION_ERROR",
        "Validation error",
        "; ".join(f"{'.'.join(f['loc'][1:]) or 'body'}: {f['msg']}" for f in fields),
        errors=fields,
    )


async def _http_error(_: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    status = HTTPStatus(exc.status_code)
    code = HTTP_CODES.get(status, f"HTTP_{status.value}")
    detail = exc.detail if isinstance(exc.detail, str) else status.description
    return problem(status.value, code, status.phrase, detail, headers=dict(exc.headers or {}))


def unexpected_error(exc: Exception) -> Response:
    """The response to an exception nothing else handled: 503 for a lost database, else 500."""
    if is_unavailable(exc):
        log.error("database.unavailable", error=type(exc).__name__)
        return problem_for(StorageUnavailable())
    log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "Something went wrong on our side.")
