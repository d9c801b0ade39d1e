"""``Verifier``: checks Bastion's access tokens inside another service."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion_verifier.check import TokenCheck
from bastion_verifier.claims import Claims, Requirement, Validity, claims_from_payload
from bastion_verifier.clients import HttpClients
from bastion_verifier.errors import InvalidToken, TokenMissing
from bastion_verifier.events import EventRevocation
from bastion_verifier.keys import KeySet
from bastion_verifier.revocation import (
    REVOCATION_MODES,
    AskBastion,
    Offline,
    Revocation,
    RevocationMode,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from bastion_verifier.dependency import Requires

ALGORITHM = "EdDSA"
JWKS_PATH = "/.well-known/jwks.json"
SERVICE_KEY_ENV = "BASTION_SERVICE_KEY"
SERVICE_KEY_PREFIX = "bsk_"
DEFAULT_LEEWAY_SECONDS = 10.0
MAX_LEEWAY_SECONDS = 300.0
DEFAULT_TIMEOUT_SECONDS = 5.0
# Bastion's default ACCESS_TOKEN_TTL: how long revocations are remembered unless longer-lived
# tokens show up.
DEFAULT_ACCESS_TOKEN_TTL = 86400
# Bastion's tokens are about 500 bytes; anything this long is refused before parsing.
MAX_TOKEN_LENGTH = 8192
VERIFIED_CACHE_SIZE = 10_000
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "sub", "sid"]
_DECODE_OPTIONS: Any = {
    "require": _REQUIRED_CLAIMS,
    # Time is judged against the verifier's clock, with its leeway (Validity.check).
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
}


class Verifier:
    """Verifies Bastion access tokens offline against its published keys.

    ``issuer`` and ``audience`` are Bastion's ``BASTION_ISSUER`` (by default its
    ``BASTION_PUBLIC_URL``) and ``BASTION_AUDIENCE`` (by default ``"bastion"``). Keys are fetched
    from ``{bastion_url}/.well-known/jwks.json``; ``bastion_url`` defaults to the issuer, and is
    where this service reaches Bastion when that differs (an internal address, say).

    ``revocation`` chooses how a token revoked before it expires is noticed:

    - ``"none"``: it is not. A signed, unexpired token is accepted, even after a log-out.
    - ``"check"``: each token is confirmed with Bastion's verify-token; answers are kept 1 s.
    - ``"events"``: Bastion's event stream is followed (``service_key`` or the environment
      variable ``BASTION_SERVICE_KEY``, a key with the ``events:read`` scope); revoked sessions,
      users and keys are refused within about a second, without a request per token.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        revocation: RevocationMode = "none",
        service_key: str | None = None,
        bastion_url: str | None = None,
        leeway: float = DEFAULT_LEEWAY_SECONDS,
        access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS:.0f} seconds")
        if timeout <= 0 or access_token_ttl <= 0:
            raise ValueError("timeout and access_token_ttl must be positive")
        self.issuer = issuer
        self.audience = audience
        self.revocation = revocation
        self.leeway = leeway
        self._clock = clock
        base = _http_url(bastion_url or issuer).rstrip("/")
        self._http = HttpClients(timeout)
        self._keys = KeySet(base + JWKS_PATH, clock)
        self._verified = VerifiedTokens(VERIFIED_CACHE_SIZE)
        self._revocation = _revocation(
            revocation, service_key, base, clock, timeout, access_token_ttl, self._http
        )

    def verify(self, token: str) -> Claims:
        """The claims of ``token``, or a ``VerifierError`` saying why it is refused.

        Blocks while it fetches keys or asks Bastion; in async code use ``verify_async``.
        """
        entry = self._verified.get(token)
        kid = entry.claims.kid if entry is not None else _signing_kid(token)
        key = self._keys.key(kid, self._http.sync_client)
        claims = self._accept(token, entry, kid, key)
        self._revocation.check(token, claims)
        return claims

    async def verify_async(self, token: str) -> Claims:
        """``verify`` for async code: fetching keys or asking Bastion never blocks the loop."""
        entry = self._verified.get(token)
        kid = entry.claims.kid if entry is not None else _signing_kid(token)
        key = await self._keys.key_async(kid, self._http.async_client)
        claims = self._accept(token, entry, kid, key)
        await self._revocation.check_async(token, claims)
        return claims

    async def authenticate(self, authorization: str | None, requirement: Requirement) -> Claims:
        """The claims of the bearer token in an ``Authorization`` header that meets
        ``requirement``."""
        claims = await self.verify_async(bearer_token(authorization))
        requirement.check(claims, self._clock(), self.leeway)
        return claims

    async def start(self) -> None:
        """Start following Bastion's events (``revocation="events"``); otherwise nothing."""
        await self._revocation.start()

    async def stop(self) -> None:
        """Stop following events and close connections to Bastion."""
        await self._revocation.stop()
        await self._http.aclose()

    def close(self) -> None:
        """Close the connections that ``verify`` opened (for code that never runs a loop)."""
        self._http.close()

    async def __aenter__(self) -> Verifier:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def install(self, app: Starlette) -> None:
        """Render this package's errors as RFC 9457 problems in a FastAPI or Starlette app, and
        start and stop the verifier with the app."""
        from bastion_verifier.integration import install

        install(self, app)

    def require(
        self,
        role: str | Collection[str] | None = None,
        aal: str | None = None,
        max_age: int | None = None,
    ) -> Requires:
        """A FastAPI dependency giving the endpoint the token's claims:
        ``claims: Claims = Depends(verifier.require(role="admin", aal="aal2", max_age=300))``.

        ``role``: one role, or several of which any will do (else 403). ``aal``: at least this
        assurance level; ``max_age``: authenticated at most this many seconds ago (else 401 with
        RFC 9470's ``insufficient_user_authentication``).
        """
        from bastion_verifier.dependency import Requires

        return Requires(self, Requirement.of(role, aal, max_age))

    def _accept(
        self, token: str, entry: VerifiedToken | None, kid: str, key: Ed25519PublicKey
    ) -> Claims:
        if entry is None:
            entry = _decode(token, key, self.issuer, self.audience, kid)
            self._verified.put(token, entry)
        entry.validity.check(self._clock(), self.leeway)
        return entry.claims


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: Claims
    validity: Validity


class VerifiedTokens:
    """Tokens whose signature, issuer and audience already checked out, by the exact token.

    A service sees the same token on many requests; its signature verifies the same way each
    time. Its times, its key still being published, and revocation are checked on every use.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._entries: dict[str, VerifiedToken] = {}
        # Reads need no lock; eviction iterates, which another thread's insert would break.
        self._lock = threading.Lock()

    def get(self, token: str) -> VerifiedToken | None:
        return self._entries.get(token)

    def put(self, token: str, entry: VerifiedToken) -> None:
        with self._lock:
            if len(self._entries) >= self._capacity:
                # Dicts keep insertion order: the oldest entry goes.
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[token] = entry


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenMissing()
    return token


def _signing_kid(token: str) -> str:
    """The kid of an EdDSA token's header, read before the signature is trusted."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken() from None
    # Only EdDSA: "none", HMAC keyed with the public key, RSA … are refused before anything else.
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
        raise InvalidToken()
    return kid


def _decode(
    token: str, key: Ed25519PublicKey, issuer: str, audience: str, kid: str
) -> VerifiedToken:
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options=_DECODE_OPTIONS,
        )
    except jwt.PyJWTError:
        raise InvalidToken() from None
    return VerifiedToken(claims_from_payload(payload, kid), Validity.of(payload))


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(
            f"{url!r} is not an http(s) URL: pass bastion_url=, where this service reaches Bastion"
        )
    return url


def _revocation(
    mode: RevocationMode,
    service_key: str | None,
    bastion_url: str,
    clock: Callable[[], float],
    timeout: float,
    access_token_ttl: float,
    http: HttpClients,
) -> Revocation:
    if mode not in REVOCATION_MODES:
        raise ValueError(f"revocation must be one of {', '.join(REVOCATION_MODES)}, not {mode!r}")
    if mode == "none":
        return Offline()
    checker = TokenCheck(bastion_url, clock, http)
    if mode == "check":
        return AskBastion(checker)
    key = service_key or os.environ.get(SERVICE_KEY_ENV)
    if not key or not key.startswith(SERVICE_KEY_PREFIX):
        raise ValueError(
            f'revocation="events" needs a service key ({SERVICE_KEY_PREFIX}…) with the '
            f"events:read scope: pass service_key= or set {SERVICE_KEY_ENV}"
        )
    return EventRevocation(bastion_url, key, checker, clock, timeout, access_token_ttl, http)
