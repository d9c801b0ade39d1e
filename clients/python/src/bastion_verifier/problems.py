"""A refusal as an HTTP response: an RFC 9457 problem, with RFC 6750 / RFC 9470 challenges."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bastion_verifier.errors import InsufficientAuthentication, VerifierError

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# What RFC 6750 allows inside its quoted challenge parameters.
_NOT_QUOTABLE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class Problem:
    status: int
    headers: dict[str, str]
    body: bytes


def problem_for(error: VerifierError) -> Problem:
    body = {
        "type": f"urn:bastion:problem:{error.code.lower().replace('_', '-')}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    headers = {"Content-Type": PROBLEM_JSON}
    if error.status == 401:
        headers["WWW-Authenticate"] = bearer_challenge(error)
    elif error.status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return Problem(error.status, headers, json.dumps(body).encode())


def bearer_challenge(error: VerifierError) -> str:
    """``Bearer`` alone when no token was sent (RFC 6750 §3.1); else with its ``error``, and for a
    step-up the ``acr_values`` and ``max_age`` that would satisfy us (RFC 9470 §3)."""
    if error.bearer_error is None:
        return "Bearer"
    parameters = {"error": error.bearer_error, "error_description": error.detail}
    if isinstance(error, InsufficientAuthentication):
        if error.acr_values is not None:
            parameters["acr_values"] = error.acr_values
        if error.max_age is not None:
            parameters["max_age"] = str(error.max_age)
    quoted = ", ".join(
        f'{name}="{_NOT_QUOTABLE.sub("", value)}"' for name, value in parameters.items()
    )
    return f"Bearer {quoted}"
