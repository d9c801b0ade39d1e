"""Access-token claims and signing keys, as plain data and rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

ALGORITHM = "EdDSA"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: uuid.UUID
    email: str
    role: str
    sid: uuid.UUID
    iat: datetime
    exp: datetime
    jti: str
    # How the session last proved who it is, and when (see ``sessions.model.Session``).
    aal: str = "aal1"
    amr: tuple[str, ...] = ("pwd",)
    auth_time: datetime | None = None


def access_token_expiry(
    issued_at: datetime, ttl: timedelta, session_expires_at: datetime
) -> datetime:
    """An access token never outlives its session."""
    return min(issued_at + ttl, session_expires_at)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    public_key: bytes  # raw 32-byte Ed25519 public key
    private_key_sealed: bytes
    created_at: datetime
    # When `bastion keys revoke` withdrew it: unpublished, and every token it signed refused.
    revoked_at: datetime | None = None


class KeyState(StrEnum):
    SIGNER = "signer"
    VERIFYING = "verifying"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class KeyStatus:
    key: SigningKey
    signing: bool
    # Until when tokens signed by this key can still be valid; None while it is the signer,
    # and for a revoked key (it verifies nothing).
    verifies_until: datetime | None

    @property
    def state(self) -> KeyState:
        if self.key.revoked_at is not None:
            return KeyState.REVOKED
        return KeyState.SIGNER if self.signing else KeyState.VERIFYING

    @property
    def published_until(self) -> datetime | None:
        """Until when the key is in the JWKS: None while it signs; its revocation if revoked."""
        if self.key.revoked_at is not None:
            return self.key.revoked_at
        return self.verifies_until


def newest_first(keys: list[SigningKey]) -> list[SigningKey]:
    """The keys, the signer first: the newest key signs."""
    return sorted(keys, key=lambda k: (k.created_at, k.kid), reverse=True)


def key_statuses(keys: list[SigningKey], access_token_ttl: timedelta) -> list[KeyStatus]:
    """Which key signs, and until when each older key must stay published; the signer first,
    the revoked keys last.

    The newest key that is not revoked signs. A key stops signing when a newer one is created,
    and stays needed for verification until every token it may have signed has expired. Two
    instances racing to create the first key simply produce two keys; the newer wins and both
    verify. A revoked key verifies nothing.
    """
    ordered = newest_first([key for key in keys if key.revoked_at is None])
    statuses = []
    superseded_at: datetime | None = None
    for key in ordered:
        if superseded_at is None:
            statuses.append(KeyStatus(key, signing=True, verifies_until=None))
        else:
            statuses.append(
                KeyStatus(key, signing=False, verifies_until=superseded_at + access_token_ttl)
            )
        superseded_at = key.created_at
    revoked = newest_first([key for key in keys if key.revoked_at is not None])
    return statuses + [KeyStatus(key, signing=False, verifies_until=None) for key in revoked]


def published(statuses: list[KeyStatus], now: datetime) -> list[KeyStatus]:
    return [
        s
        for s in statuses
        if s.key.revoked_at is None and (s.verifies_until is None or s.verifies_until > now)
    ]


def has_signer(keys: list[SigningKey]) -> bool:
    return any(key.revoked_at is None for key in keys)


def is_older_than(key: SigningKey, max_age: timedelta, now: datetime) -> bool:
    return now - key.created_at > max_age


@dataclass(frozen=True, slots=True)
class Rotation:
    """What an automatic rotation found and did."""

    signer: SigningKey  # the key that signs now
    replaced: SigningKey | None  # the key it replaced; None when the signer was kept

    @property
    def rotated(self) -> bool:
        return self.replaced is not None
