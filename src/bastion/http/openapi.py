"""What the OpenAPI document says beyond what FastAPI derives from each route: the problems the
HTTP layer answers for every route that takes input, and how callers authenticate."""

from __future__ import annotations

from typing import Any

from bastion.http.errors import (
    HTTP_PROBLEMS,
    MALFORMED_JSON,
    VALIDATION_ERROR,
    ProblemType,
    problem_response,
)
from bastion.http.problems import PROBLEM_JSON

BEARER_SCHEME = "bearerAuth"
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable and meant for programs.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["INVALID_CREDENTIALS"]},
        "errors": {
            "type": "array",
            "description": "Validation errors only: each invalid field, never its value.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
# FastAPI documents its own 422 body, which Bastion never sends (it sends a Problem).
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# Answered before any route runs, for every operation with a request body.
BODY_PROBLEMS = (MALFORMED_JSON, *(HTTP_PROBLEMS[status] for status in (408, 413, 415)))
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# What every string in a request must match (http/unstorable.py refuses the rest). Unpaired
# surrogates are refused too, but they are no Unicode text a schema could speak of.
STORABLE_TEXT = "^[^\\u0000]*$"
# A request member that takes any JSON (a WebAuthn credential as the browser shapes it): its
# strings and keys, however deep, hold no NUL either.
STORABLE_JSON = "StorableJson"
STORABLE_JSON_REF = {"$ref": f"#/components/schemas/{STORABLE_JSON}"}
STORABLE_JSON_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value whose strings and member names hold no NUL",
    "anyOf": [
        {"type": "string", "pattern": STORABLE_TEXT},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": STORABLE_JSON_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": STORABLE_TEXT},
            "additionalProperties": STORABLE_JSON_REF,
        },
    ],
}
# Strings with a format of their own never hold a NUL when valid.
SELF_DESCRIBED_FORMATS = {"uuid", "date-time", "date"}


def complete_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the shared problems documented on every operation they can answer, the
    bearer scheme on every operation that takes an access token, and on every request string
    the text it must be (no NUL)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas[STORABLE_JSON] = STORABLE_JSON_SCHEMA
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The access token from `POST /api/v1/auth/login`.",
        }
    }
    request_models: set[str] = set()
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in HTTP_METHODS:
                _complete_operation(operation)
                for parameter in operation.get("parameters", []):
                    _require_storable_text(parameter.get("schema", {}), schemas, request_models)
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    _require_storable_text(content.get("schema", {}), schemas, request_models)
    return schema


def _complete_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if operation.get("parameters") or "requestBody" in operation:
        _document(responses, VALIDATION_ERROR)
    if "requestBody" in operation:
        for kind in BODY_PROBLEMS:
            _document(responses, kind)
    # The routes document INVALID_TOKEN exactly when they take a bearer token.
    if "`INVALID_TOKEN`" in responses.get("401", {}).get("description", ""):
        operation["security"] = [{BEARER_SCHEME: []}]
    operation["responses"] = dict(sorted(responses.items()))


def _document(responses: dict[str, Any], kind: ProblemType) -> None:
    """Add ``kind`` to the operation's response of its status, creating or replacing that
    response unless it documents problems already."""
    status = str(kind.status)
    existing = responses.get(status)
    if existing is None or PROBLEM_JSON not in existing.get("content", {}):
        responses[status] = problem_response([kind])
    elif f"`{kind.code}`" not in existing["description"]:
        existing["description"] += f", `{kind.code}`"


def _require_storable_text(
    subschema: dict[str, Any], schemas: dict[str, Any], visited: set[str]
) -> None:
    """Give every free-text string of a request schema the pattern it must match, following
    references into the component schemas once each."""
    reference = subschema.get("$ref", "")
    if reference.startswith("#/components/schemas/"):
        name = reference.rsplit("/", 1)[1]
        if name not in visited:
            visited.add(name)
            _require_storable_text(schemas[name], schemas, visited)
        return
    if (
        subschema.get("type") == "string"
        and "enum" not in subschema
        and subschema.get("format") not in SELF_DESCRIBED_FORMATS
    ):
        subschema.setdefault("pattern", STORABLE_TEXT)
    for key in ("anyOf", "oneOf", "allOf"):
        for item in subschema.get(key, []):
            _require_storable_text(item, schemas, visited)
    if subschema.get("type") == "object" and subschema.get("additionalProperties") is True:
        subschema["propertyNames"] = {"pattern": STORABLE_TEXT}
        subschema["additionalProperties"] = STORABLE_JSON_REF
    for item in subschema.get("properties", {}).values():
        _require_storable_text(item, schemas, visited)
    if isinstance(subschema.get("items"), dict):
        _require_storable_text(subschema["items"], schemas, visited)
