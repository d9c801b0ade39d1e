"""Signing and verifying access tokens; managing the signing keys."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from bastion.audit.model import AuditEvent, EventType
from bastion.core.clock import Clock
from bastion.core.secrets import Sealer, new_token
from bastion.events.model import signing_key_revoked
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from bastion.tokens.errors import AccessTokenExpired, InvalidToken, SigningKeyNotFound
from bastion.tokens.model import (
    ALGORITHM,
    AccessClaims,
    KeyState,
    KeyStatus,
    Rotation,
    SigningKey,
    has_signer,
    is_older_than,
    key_statuses,
    newest_first,
    published,
)

log = structlog.get_logger("bastion.tokens")
# The lease under which signing keys are rotated: one instance at a time, so never two at once.
ROTATION_LEASE = "signing-key-rotation"
# Every instance rereads the keys at least this often, so that a revoked key is refused
# everywhere within a second (one small query per process and interval).
KEY_REFRESH_SECONDS = 0.5
UNKNOWN_KID_REFRESH_SECONDS = 0.5
VERIFIED_CACHE_SIZE = 50_000
# Ours are about 80 characters; anything much longer was not issued here.
MAX_HEADER_SEGMENT = 256


@dataclass(frozen=True, slots=True)
class _LoadedKeys:
    signer_kid: str
    signer: Ed25519PrivateKey
    verifiers: dict[str, Ed25519PublicKey]
    statuses: list[KeyStatus]
    loaded_at: float


class TokenService:
    """Issues Ed25519 JWTs and verifies them offline against the published keys.

    Keys live in the database so every instance signs with the same key; each process keeps them
    in memory and reloads periodically, or at once (rate-limited) when it meets an unknown kid.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        sealer: Sealer,
        clock: Clock,
        *,
        issuer: str,
        audience: str,
        access_token_ttl: int,
    ) -> None:
        self._uow = uow
        self._sealer = sealer
        self._clock = clock
        self.issuer = issuer
        self.audience = audience
        self.access_token_ttl = timedelta(seconds=access_token_ttl)
        self._keys: _LoadedKeys | None = None
        self._verified = VerifiedTokens(VERIFIED_CACHE_SIZE)
        self._lock = asyncio.Lock()

    async def ensure_key(self) -> None:
        """Create the first signing key if there is none, then load the keys."""
        await self._reload()

    async def rotate(self) -> SigningKey:
        """A new signing key, at once. Tokens signed by older keys stay valid until they
        expire, their keys published until then."""
        async with self._uow() as uow:
            signer = _signer_of(await uow.signing_keys.list())
            key = await self._add_signer(uow, signer, reason="manual")
            await uow.commit()
        await self._switched(key, signer, reason="manual")
        return key

    async def rotate_if_older_than(self, max_age: timedelta) -> Rotation:
        """Rotate if the signing key is older than ``max_age``.

        The keys are read from the database, not from this process's copy, so that after another
        instance rotated there is nothing to do. Two instances checking at once could both find
        the old key: run it under ``ROTATION_LEASE``.
        """
        now = self._clock.now()
        async with self._uow() as uow:
            signer = _signer_of(await uow.signing_keys.list())
            if signer is not None and not is_older_than(signer, max_age, now):
                return Rotation(signer, replaced=None)
            key = await self._add_signer(uow, signer, reason="age")
            await uow.commit()
        await self._switched(key, signer, reason="age")
        return Rotation(key, replaced=signer)

    async def _add_signer(
        self, uow: UnitOfWork, signer: SigningKey | None, *, reason: str
    ) -> SigningKey:
        key = self._new_key()
        await uow.signing_keys.add(key)
        details = {"kid": key.kid, "replaced_kid": signer.kid if signer else None, "reason": reason}
        await uow.audit.record(
            AuditEvent(EventType.SIGNING_KEY_ROTATED, key.created_at, details=details)
        )
        return key

    async def _switched(self, key: SigningKey, replaced: SigningKey | None, *, reason: str) -> None:
        """This process signs with ``key`` from now on; the others within KEY_REFRESH_SECONDS."""
        await self._reload()
        log.info(
            "keys.rotated", kid=key.kid, replaced=replaced.kid if replaced else None, reason=reason
        )

    async def revoke(self, kid: str) -> SigningKey | None:
        """Withdraw a key at once: it leaves the JWKS, and every token it signed is refused by
        every instance within KEY_REFRESH_SECONDS. If it signs, a new key becomes the signer
        first; that new key, or None if the signer was kept."""
        now = self._clock.now()
        async with self._uow() as uow:
            keys = await uow.signing_keys.list()
            statuses = key_statuses(keys, self.access_token_ttl)
            found = next((s for s in statuses if s.key.kid == kid), None)
            if found is None or found.state is KeyState.REVOKED:
                raise SigningKeyNotFound()
            replacement = None
            if found.signing:
                replacement = await self._add_signer(uow, found.key, reason="revocation")
            if not await uow.signing_keys.revoke(kid, now):
                raise SigningKeyNotFound()
            await uow.events.publish(signing_key_revoked(kid, now))
            details = {"kid": kid, "replaced_by": replacement.kid if replacement else None}
            await uow.audit.record(AuditEvent(EventType.SIGNING_KEY_REVOKED, now, details=details))
            await uow.commit()
        await self._reload()
        log.warning("keys.revoked", kid=kid, signer=replacement.kid if replacement else None)
        return replacement

    async def fresh_statuses(self) -> list[KeyStatus]:
        """Every stored key's status, read from the database now."""
        async with self._uow(read_only=True) as uow:
            return key_statuses(await uow.signing_keys.list(), self.access_token_ttl)

    async def statuses(self) -> list[KeyStatus]:
        return (await self._current(max_age=KEY_REFRESH_SECONDS)).statuses

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = await self._current(max_age=KEY_REFRESH_SECONDS)
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64(status.key.public_key),
                    "kid": status.key.kid,
                    "use": "sig",
                    "alg": ALGORITHM,
                }
                for status in published(keys.statuses, self._clock.now())
            ]
        }

    async def issue(self, claims: AccessClaims) -> str:
        keys = await self._current(max_age=KEY_REFRESH_SECONDS)
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(claims.sub),
            "email": claims.email,
            "role": claims.role,
            "sid": str(claims.sid),
            "iat": int(claims.iat.timestamp()),
            "exp": int(claims.exp.timestamp()),
            "jti": claims.jti,
            "aal": claims.aal,
            "amr": list(claims.amr),
            "auth_time": int((claims.auth_time or claims.iat).timestamp()),
        }
        return jwt.encode(
            payload, keys.signer, algorithm=ALGORITHM, headers={"kid": keys.signer_kid}
        )

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, if it is an unexpired EdDSA token signed by one of our keys."""
        verified = self._verified.get(token)
        if verified is None:
            verified = await self._verify_signature(token)
            self._verified.put(token, verified)
        else:
            # Verified before, but its key may have been revoked since.
            keys = await self._current(max_age=KEY_REFRESH_SECONDS)
            if verified[0] not in keys.verifiers:
                raise InvalidToken()
        claims = verified[1]
        if claims["exp"] <= self._clock.now().timestamp():
            raise AccessTokenExpired()
        return claims

    async def _verify_signature(self, token: str) -> tuple[str, dict[str, Any]]:
        """The kid of the key that verified the token, and its claims."""
        kid = signing_kid(token)
        keys = await self._current(max_age=KEY_REFRESH_SECONDS)
        if kid not in keys.verifiers:
            keys = await self._current(max_age=UNKNOWN_KID_REFRESH_SECONDS)
        key = keys.verifiers.get(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                # Expiry is judged against the injected clock, not the library's.
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub", "sid", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if not isinstance(claims["exp"], int):
            raise InvalidToken()
        return kid, claims

    def new_jti(self) -> str:
        return new_token()

    async def _current(self, *, max_age: float) -> _LoadedKeys:
        keys = self._keys
        if keys is not None and time.monotonic() - keys.loaded_at < max_age:
            return keys
        async with self._lock:
            keys = self._keys
            if keys is None or time.monotonic() - keys.loaded_at >= max_age:
                keys = await self._reload()
        return keys

    async def _reload(self) -> _LoadedKeys:
        async with self._uow() as uow:
            stored = await uow.signing_keys.list()
            if not has_signer(stored):
                stored = [*stored, self._new_key()]
                await uow.signing_keys.add(stored[-1])
                await uow.commit()
        statuses = key_statuses(stored, self.access_token_ttl)
        signer = statuses[0].key
        self._keys = _LoadedKeys(
            signer_kid=signer.kid,
            signer=Ed25519PrivateKey.from_private_bytes(
                self._sealer.open(signer.private_key_sealed)
            ),
            verifiers={
                s.key.kid: Ed25519PublicKey.from_public_bytes(s.key.public_key)
                for s in published(statuses, self._clock.now())
            },
            statuses=statuses,
            loaded_at=time.monotonic(),
        )
        return self._keys

    def _new_key(self) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return SigningKey(
            kid=uuid.uuid4().hex,
            public_key=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            private_key_sealed=self._sealer.seal(
                private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            ),
            created_at=self._clock.now(),
        )


def _signer_of(keys: list[SigningKey]) -> SigningKey | None:
    return next(iter(newest_first([key for key in keys if key.revoked_at is None])), None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signing_kid(token: str) -> str:
    """The kid of an EdDSA token's header, read without trusting it yet.

    The header segment is bounded before it is decoded: ours are under 100 characters, and an
    unbounded one lets a caller make the JSON parser recurse until it fails.
    """
    header_segment, dot, _ = token[: MAX_HEADER_SEGMENT + 1].partition(".")
    if not dot:
        raise InvalidToken()
    try:
        header = json.loads(
            base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4))
        )
    except (ValueError, RecursionError):
        raise InvalidToken() from None
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        raise InvalidToken()
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidToken()
    return kid


class VerifiedTokens:
    """The kid and claims of tokens whose signature already verified, keyed by the exact
    token.

    Resource servers present the same token many times; checking its Ed25519 signature once
    is enough, since the same bytes verify the same way. Expiry is still checked on every use.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._claims: dict[str, tuple[str, dict[str, Any]]] = {}

    def get(self, token: str) -> tuple[str, dict[str, Any]] | None:
        return self._claims.get(token)

    def put(self, token: str, claims: tuple[str, dict[str, Any]]) -> None:
        if len(self._claims) >= self._capacity:
            # Dicts keep insertion order: drop the oldest entry.
            del self._claims[next(iter(self._claims))]
        self._claims[token] = claims
