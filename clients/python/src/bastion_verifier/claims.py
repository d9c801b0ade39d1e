"""The claims of a verified token, and what an endpoint may require of them."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bastion_verifier.errors import (
    InsufficientAuthentication,
    InsufficientRole,
    InvalidToken,
    TokenExpired,
)

# Authenticator assurance levels (NIST SP 800-63B), weakest first.
ASSURANCE_LEVELS = ("aal1", "aal2", "aal3")
# Tokens from before Bastion recorded assurance were password log-ins: the weakest level.
DEFAULT_AAL = "aal1"
# Seconds since the epoch that a datetime can hold (up to the end of year 9999).
_LATEST_TIMESTAMP = 253402300799


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified Bastion access token says about its bearer."""

    sub: str  # the user's id
    email: str
    role: str
    sid: str  # the session's id
    aal: str  # "aal1", "aal2" …
    amr: tuple[str, ...]  # RFC 8176 authentication methods, e.g. ("pwd",)
    auth_time: datetime  # when the session last proved who it is, at this level
    exp: datetime
    iat: datetime
    jti: str | None
    kid: str  # the signing key

    def lifetime(self) -> float:
        return (self.exp - self.iat).total_seconds()


def claims_from_payload(payload: Mapping[str, Any], kid: str) -> Claims:
    """Typed claims from a token whose signature, issuer and audience were already checked.

    ``aal``, ``amr`` and ``auth_time`` are optional: tokens without them get ``aal1``, no
    methods, and ``auth_time`` = ``iat``.
    """
    iat = _timestamp(payload, "iat")
    auth_time = _timestamp(payload, "auth_time") if "auth_time" in payload else iat
    amr = payload.get("amr", [])
    if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
        raise InvalidToken()
    jti = payload.get("jti")
    if jti is not None and not isinstance(jti, str):
        raise InvalidToken()
    return Claims(
        sub=_string(payload, "sub"),
        email=_string(payload, "email"),
        role=_string(payload, "role"),
        sid=_string(payload, "sid"),
        aal=_string(payload, "aal") if "aal" in payload else DEFAULT_AAL,
        amr=tuple(amr),
        auth_time=_datetime(auth_time),
        exp=_datetime(_timestamp(payload, "exp")),
        iat=_datetime(iat),
        jti=jti,
        kid=kid,
    )


@dataclass(frozen=True, slots=True)
class Validity:
    """When a token may be used: its ``exp``, ``nbf`` and ``iat`` in seconds since the epoch."""

    exp: float
    nbf: float | None
    iat: float

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Validity:
        nbf = _timestamp(payload, "nbf") if "nbf" in payload else None
        return cls(_timestamp(payload, "exp"), nbf, _timestamp(payload, "iat"))

    def check(self, now: float, leeway: float) -> None:
        """Each time is allowed ``leeway`` seconds of clock skew."""
        if now >= self.exp + leeway:
            raise TokenExpired()
        if self.nbf is not None and now + leeway < self.nbf:
            raise InvalidToken("The access token is not valid yet.")
        if now + leeway < self.iat:
            raise InvalidToken("The access token was issued in the future.")


def _string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken()
    return value


def _timestamp(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    # bool is an int in Python, and not a time.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken()
    if not math.isfinite(value) or not 0 <= value <= _LATEST_TIMESTAMP:
        raise InvalidToken()
    return float(value)


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an endpoint asks of a valid token beyond its validity.

    ``role``: one role or several (any of them will do). ``aal``: at least this assurance level.
    ``max_age``: the user authenticated at most this many seconds ago.
    """

    roles: frozenset[str] = frozenset()
    aal: str | None = None
    max_age: int | None = None

    @classmethod
    def of(
        cls,
        role: str | Collection[str] | None = None,
        aal: str | None = None,
        max_age: int | None = None,
    ) -> Requirement:
        roles = frozenset({role} if isinstance(role, str) else role or ())
        if role is not None and not roles:
            raise ValueError("role must name at least one role (or be None for any role)")
        if aal is not None and aal not in ASSURANCE_LEVELS:
            raise ValueError(f"aal must be one of {', '.join(ASSURANCE_LEVELS)}, not {aal!r}")
        if max_age is not None and (isinstance(max_age, bool) or max_age < 0):
            raise ValueError("max_age must be a number of seconds, 0 or more")
        return cls(roles, aal, max_age)

    def check(self, claims: Claims, now: float, leeway: float) -> None:
        """Refuse ``claims`` that fall short: the role first, since stepping up cannot fix it."""
        if self.roles and claims.role not in self.roles:
            raise InsufficientRole()
        too_weak = self.aal is not None and _level(claims.aal) < _level(self.aal)
        too_old = (
            self.max_age is not None and now - claims.auth_time.timestamp() > self.max_age + leeway
        )
        if too_weak or too_old:
            reasons = []
            if too_weak:
                reasons.append(f"an authentication at {self.aal} or higher")
            if too_old:
                reasons.append(f"an authentication within the last {self.max_age} seconds")
            # The challenge names every requirement, so that one step-up satisfies them all.
            raise InsufficientAuthentication(
                f"This request needs {' and '.join(reasons)}.",
                acr_values=self.aal,
                max_age=self.max_age,
            )


def _level(aal: str) -> int:
    # An assurance level this package does not know counts as the weakest: fail closed.
    return ASSURANCE_LEVELS.index(aal) if aal in ASSURANCE_LEVELS else 0
