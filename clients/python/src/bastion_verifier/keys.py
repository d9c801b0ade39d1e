"""Bastion's public signing keys: fetched from its JWKS and cached as its Cache-Control says."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion_verifier.errors import InvalidToken, IssuerUnavailable

log = logging.getLogger("bastion_verifier")

# A token naming a key we do not have makes us ask again, but no more often than this: a
# flood of made-up kids must not become a flood of requests to Bastion.
UNKNOWN_KID_REFETCH_SECONDS = 10.0
# How long a key set stays fresh when the response does not say (no max-age), and the bounds
# put on what it does say.
DEFAULT_FRESHNESS_SECONDS = 300.0
MIN_FRESHNESS_SECONDS = 1.0
MAX_FRESHNESS_SECONDS = 86400.0
# After a failed fetch: keys we already hold stay in use and are asked for again this much
# later; without keys, tokens are refused with 503 and the fetch is retried after a second.
RETRY_WITH_KEYS_SECONDS = 10.0
RETRY_WITHOUT_KEYS_SECONDS = 1.0
ED25519_PUBLIC_KEY_BYTES = 32


class KeySet:
    """The Ed25519 keys of ``{Bastion}/.well-known/jwks.json``, by kid."""

    def __init__(self, url: str, clock: Callable[[], float]) -> None:
        self._url = url
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self._refresh_at = 0.0
        self._unknown_kid_fetched_at = float("-inf")
        self._thread_lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    def key(self, kid: str, client: Callable[[], httpx.Client]) -> Ed25519PublicKey:
        if self._fetch_due(kid):
            with self._thread_lock:
                if self._fetch_due(kid):
                    self._fetching(kid)
                    try:
                        response = client().get(self._url, headers=_ACCEPT_JSON)
                    except httpx.HTTPError as exc:
                        self._failed(exc)
                    else:
                        self._fetched(response)
        return self._lookup(kid)

    async def key_async(
        self, kid: str, client: Callable[[], httpx.AsyncClient]
    ) -> Ed25519PublicKey:
        if self._fetch_due(kid):
            async with self._async_lock:
                if self._fetch_due(kid):
                    self._fetching(kid)
                    try:
                        response = await client().get(self._url, headers=_ACCEPT_JSON)
                    except httpx.HTTPError as exc:
                        self._failed(exc)
                    else:
                        self._fetched(response)
        return self._lookup(kid)

    def _fetch_due(self, kid: str) -> bool:
        now = self._clock()
        if now >= self._refresh_at:
            return True
        return (
            self._keys is not None
            and kid not in self._keys
            and now >= self._unknown_kid_fetched_at + UNKNOWN_KID_REFETCH_SECONDS
        )

    def _fetching(self, kid: str) -> None:
        # Counted when asked, not when answered: a failing fetch also waits its turn.
        if self._keys is not None and kid not in self._keys:
            self._unknown_kid_fetched_at = self._clock()

    def _fetched(self, response: httpx.Response) -> None:
        try:
            if response.status_code != httpx.codes.OK:
                raise ValueError(f"status {response.status_code}")
            self._keys = parse_jwks(response.json())
        except ValueError as exc:
            self._failed(exc)
            return
        self._refresh_at = self._clock() + freshness_seconds(response.headers)

    def _failed(self, error: Exception) -> None:
        log.warning("Could not fetch Bastion's keys from %s: %s", self._url, error)
        delay = RETRY_WITHOUT_KEYS_SECONDS if self._keys is None else RETRY_WITH_KEYS_SECONDS
        self._refresh_at = self._clock() + delay

    def _lookup(self, kid: str) -> Ed25519PublicKey:
        keys = self._keys
        if keys is None:
            raise IssuerUnavailable()
        key = keys.get(kid)
        if key is None:
            raise InvalidToken("The access token was signed by an unknown key.")
        return key


_ACCEPT_JSON = {"Accept": "application/json"}


def parse_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS document; keys of any other kind are left out."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    keys = {}
    for jwk in document["keys"]:
        parsed = _ed25519_key(jwk)
        if parsed is not None:
            keys[parsed[0]] = parsed[1]
    return keys


def _ed25519_key(jwk: Any) -> tuple[str, Ed25519PublicKey] | None:
    if not isinstance(jwk, Mapping):
        return None
    kid, x = jwk.get("kid"), jwk.get("x")
    if (
        jwk.get("kty") != "OKP"
        or jwk.get("crv") != "Ed25519"
        or jwk.get("alg", "EdDSA") != "EdDSA"
        or jwk.get("use", "sig") != "sig"
        or not isinstance(kid, str)
        or not isinstance(x, str)
    ):
        return None
    try:
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        return None
    return kid, Ed25519PublicKey.from_public_bytes(raw)


def freshness_seconds(headers: Mapping[str, str]) -> float:
    """How long a response stays fresh by its Cache-Control and Age, within our bounds."""
    directives: dict[str, str] = {}
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return MIN_FRESHNESS_SECONDS
    max_age = _seconds(directives.get("max-age"))
    if max_age is None:
        return DEFAULT_FRESHNESS_SECONDS
    fresh = max_age - (_seconds(headers.get("age")) or 0)
    return min(max(fresh, MIN_FRESHNESS_SECONDS), MAX_FRESHNESS_SECONDS)


def _seconds(value: str | None) -> float | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    # Any number longer than this is past the upper bound anyway (and int() refuses huge ones).
    if len(value) > len(str(int(MAX_FRESHNESS_SECONDS))):
        return MAX_FRESHNESS_SECONDS
    return min(float(value), MAX_FRESHNESS_SECONDS)
