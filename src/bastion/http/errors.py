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
from starlette.routing import BaseRoute

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
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
RAISES = "__bastion_raises__"
Call = TypeVar("Call", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ProblemType:
    status: int
    code: str
    title: str
    bearer: bool = False


ProblemRows = Mapping[type[BastionError], ProblemType]

# The rows of the error classes every feature builds on.
CORE_PROBLEMS: ProblemRows = {
    TokenInvalid: ProblemType(400, "TOKEN_INVALID", "Invalid link"),
    TokenExpired: ProblemType(410, "TOKEN_EXPIRED", "Link expired"),
    # Refused at the edge as any invalid field is; a use case that meets one answers alike.
    InvalidEmailAddress: ProblemType(422, "VALIDATION_ERROR", "Validation error"),
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
        return problem(kind.status, kind.code, kind.title, error.detail, headers=headers)

    def openapi_responses(
        self, errors: Iterable[type[BastionError]]
    ) -> dict[int | str, dict[str, Any]]:
        """OpenAPI ``responses`` documenting every error code a route can return."""
        by_status: dict[int, list[ProblemType]] = {}
        for error in (*errors, StorageUnavailable):
            kind = self.kind(error)
            by_status.setdefault(kind.status, []).append(kind)
        responses: dict[int | str, dict[str, Any]] = {}
        for status, kinds in sorted(by_status.items()):
            codes = ", ".join(f"`{k.code}`" for k in kinds)
            first = kinds[0]
            responses[status] = {
                "description": f"{HTTPStatus(status).phrase}: {codes}",
                "content": {
                    PROBLEM_JSON: {
                        "schema": {"$ref": "#/components/schemas/Problem"},
                        "example": {
                            "type": f"urn:bastion:problem:{first.code.lower().replace('_', '-')}",
                            "title": first.title,
                            "status": status,
                            "detail": "…",
                            "code": first.code,
                        },
                    }
                },
            }
        return responses

    def document(
        self,
        routes: Iterable[BaseRoute],
        served_by: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> None:
        """Set the error documentation of each route that raises something: what its endpoint
        declares, then what its dependencies declare (``served_by`` names the function that
        serves a dependency installed at start-up, such as the authenticator)."""
        served_by = served_by or {}
        for route in routes:
            if not isinstance(route, APIRoute):
                continue
            own = raised_by(route.endpoint)
            errors = [*own, *_raised_by_dependencies(route.dependant, served_by)]
            if errors:
                route.responses = self.openapi_responses(dict.fromkeys(errors))


def raises(*errors: type[BastionError]) -> Callable[[Call], Call]:
    """Declare the errors an endpoint or a dependency answers with, for the documentation."""

    def declare(call: Call) -> Call:
        setattr(call, RAISES, errors)
        return call

    return declare


def raised_by(call: Callable[..., Any]) -> Sequence[type[BastionError]]:
    return cast(Sequence[type[BastionError]], getattr(call, RAISES, ()))


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


CORE_TABLE = ProblemTable(CORE_PROBLEMS)


def unexpected_error(exc: Exception, is_unavailable: Callable[[BaseException], bool]) -> Response:
    """The response to an exception nothing else handled: 503 when ``is_unavailable`` says the
    database is lost, else 500."""
    if is_unavailable(exc):
        log.error("database.unavailable", error=type(exc).__name__)
        return CORE_TABLE.response(StorageUnavailable())
    log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "Something went wrong on our side.")
