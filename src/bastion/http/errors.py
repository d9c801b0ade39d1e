"""Problem documents for errors: the table from domain errors to statuses and stable codes, the
handlers that render them, and the OpenAPI documentation drawn from the same table.

Each feature declares the rows of its own errors (next to its routes); the app assembles the one
table from them. Endpoints and dependencies declare which errors they answer with (``raises``),
so a route's documentation includes what its dependencies may refuse it with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bastion.core.email_address import InvalidEmailAddress
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

log = structlog.get_logger("bastion.http")
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
RETRY_LATER_SECONDS = "5"
# The order methods are listed in an Allow header.
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
RAISES = "__bastion_raises__"
Call = TypeVar("Call", bound=Callable[..., Any])


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

ProblemRows = Mapping[type[BastionError], ProblemType]

# The rows of the error classes every feature builds on.
CORE_PROBLEMS: ProblemRows = {
    TokenInvalid: ProblemType(400, "TOKEN_INVALID", "Invalid link"),
    TokenExpired: ProblemType(410, "TOKEN_EXPIRED", "Link expired"),
    # Refused at the edge as any invalid field is; a use case that meets one answers alike.
    InvalidEmailAddress: VALIDATION_ERROR,
    StorageUnavailable: ProblemType(503, "SERVICE_UNAVAILABLE", "Service unavailable"),
    NotFound: ProblemType(404, "NOT_FOUND", "Not found"),
    Forbidden: ProblemType(403, "FORBIDDEN", "Forbidden"),
    Conflict: ProblemType(409, "CONFLICT", "Conflict"),
    Unauthenticated: ProblemType(401, "UNAUTHENTICATED", "Authentication required", bearer=True),
    BastionError: ProblemType(400, "BAD_REQUEST", "Bad request"),
}


class ProblemTable:
    """The one table from domain errors to HTTP statuses and stable codes."""

    def __init__(self, *rows: ProblemRows) -> None:
        self._rows: dict[type[BastionError], ProblemType] = {}
        for part in rows:
            twice = sorted(error.__name__ for error in self._rows.keys() & part.keys())
            if twice:
                raise ValueError(f"errors given two problem rows: {', '.join(twice)}")
            self._rows.update(part)

    def kind(self, error: type[BastionError]) -> ProblemType:
        """The entry for the most specific class of ``error`` in the table."""
        for cls in error.__mro__:
            if cls in self._rows:
                return self._rows[cls]
        raise LookupError(error)

    def response(self, error: BastionError) -> Response:
        kind = self.kind(type(error))
        headers: dict[str, str] = {}
        if kind.bearer:
            headers.update(BEARER_CHALLENGE)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        elif kind.status == HTTPStatus.SERVICE_UNAVAILABLE:
            headers["Retry-After"] = RETRY_LATER_SECONDS
        return problem(
            kind.status, kind.code, kind.title, error.detail, headers=headers, **error.extensions()
        )

    def openapi_responses(
        self, errors: Iterable[type[BastionError]]
    ) -> dict[int | str, dict[str, Any]]:
        """OpenAPI ``responses`` documenting every error code a route can return."""
        by_status: dict[int, list[ProblemType]] = {}
        for error in (*errors, StorageUnavailable):
            kind = self.kind(error)
            by_status.setdefault(kind.status, []).append(kind)
        return {status: problem_response(kinds) for status, kinds in sorted(by_status.items())}

    def document(
        self,
        routes: Iterable[BaseRoute],
        served_by: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> None:
        """Add the error documentation of each route that raises something to what the route
        documents itself (a success's links, say): what its endpoint declares, then what its
        dependencies declare (``served_by`` names the function that serves a dependency
        installed at start-up, such as the authenticator)."""
        served_by = served_by or {}
        for route in routes:
            if not isinstance(route, APIRoute):
                continue
            own = raised_by(route.endpoint)
            errors = [*own, *_raised_by_dependencies(route.dependant, served_by)]
            if errors:
                route.responses = {
                    **route.responses,
                    **self.openapi_responses(dict.fromkeys(errors)),
                }


def raises(*errors: type[BastionError]) -> Callable[[Call], Call]:
    """Declare the errors an endpoint or a dependency answers with, for the documentation."""

    def declare(call: Call) -> Call:
        setattr(call, RAISES, errors)
        return call

    return declare


def raised_by(call: Callable[..., Any]) -> Sequence[type[BastionError]]:
    return cast(Sequence[type[BastionError]], getattr(call, RAISES, ()))


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


def _raised_by_dependencies(
    dependant: Dependant, served_by: Mapping[Callable[..., Any], Callable[..., Any]]
) -> list[type[BastionError]]:
    errors: list[type[BastionError]] = []
    for dependency in dependant.dependencies:
        errors += _raised_by_dependencies(dependency, served_by)
        if dependency.call is not None:
            errors += raised_by(served_by.get(dependency.call, dependency.call))
    return errors


def install_error_handlers(app: FastAPI, problems: ProblemTable) -> None:
    async def domain_error(_: Request, exc: Exception) -> Response:
        return problems.response(cast(BastionError, exc))

    app.add_exception_handler(BastionError, domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


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


CORE_TABLE = ProblemTable(CORE_PROBLEMS)


def unexpected_error(exc: Exception, is_unavailable: Callable[[BaseException], bool]) -> Response:
    """The response to an exception nothing else handled: 503 when ``is_unavailable`` says the
    database is lost, else 500."""
    if is_unavailable(exc):
        log.error("database.unavailable", error=type(exc).__name__)
        return CORE_TABLE.response(StorageUnavailable())
    log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "Something went wrong on our side.")
