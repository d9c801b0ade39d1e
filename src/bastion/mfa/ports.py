from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bastion.mfa.model import (
    ChallengePurpose,
    Factor,
    MfaToken,
    TotpFactor,
    WebAuthnChallenge,
    WebAuthnCredential,
)


class FactorRepository(Protocol):
    """TOTP factors and WebAuthn credentials. Every change that must happen once is one
    conditional statement, so of two parallel attempts exactly one wins."""

    async def add_totp(self, factor: TotpFactor) -> None: ...

    async def add_webauthn(self, credential: WebAuthnCredential) -> None: ...

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> list[Factor]:
        """The user's factors, pending TOTP ones included, oldest first. ``for_update`` locks
        them until the transaction ends, so that two removals cannot both see a second factor."""
        ...

    async def get(self, user_id: uuid.UUID, factor_id: uuid.UUID) -> Factor | None:
        """The factor if it is this user's."""
        ...

    async def credential(self, credential_id: bytes) -> WebAuthnCredential | None:
        """The WebAuthn credential with this id, whoever owns it."""
        ...

    async def confirm_totp(
        self, factor_id: uuid.UUID, step: int, now: datetime, created_after: datetime
    ) -> bool:
        """Confirm a pending TOTP factor created after ``created_after`` and remember ``step``
        as used; False if it was confirmed (or lapsed) already."""
        ...

    async def advance_totp_step(self, factor_id: uuid.UUID, step: int, now: datetime) -> bool:
        """Accept ``step`` of a confirmed TOTP factor unless a step at or after it was accepted
        already; True when this call accepted it."""
        ...

    async def record_assertion(
        self, factor_id: uuid.UUID, sign_count: int, backup_state: bool, now: datetime
    ) -> bool:
        """Store a WebAuthn credential's new counter and backup state if the counter still
        follows the sign-counter rule against the stored one; True when stored."""
        ...

    async def rename(self, user_id: uuid.UUID, factor_id: uuid.UUID, name: str) -> bool: ...

    async def delete(self, user_id: uuid.UUID, factor_ids: Sequence[uuid.UUID]) -> int:
        """Delete these factors of the user; how many there were."""
        ...


class RecoveryCodeRepository(Protocol):
    """Recovery codes, stored only as keyed hashes (HMAC)."""

    async def replace(self, user_id: uuid.UUID, digests: Sequence[str], now: datetime) -> None:
        """Make ``digests`` the user's only codes: the previous set stops working."""
        ...

    async def use(self, user_id: uuid.UUID, digest: str, now: datetime) -> bool:
        """Spend an unused code of the user's; False if it is unknown or already spent."""
        ...

    async def remaining(self, user_id: uuid.UUID) -> int: ...

    async def delete_all(self, user_id: uuid.UUID) -> None: ...


class WebAuthnChallengeRepository(Protocol):
    async def add(self, challenge: WebAuthnChallenge) -> None:
        """Store a challenge (and forget the expired ones)."""
        ...

    async def spend(
        self, challenge_hash: str, purpose: ChallengePurpose, now: datetime
    ) -> WebAuthnChallenge | None:
        """Delete the live challenge of this purpose and return it; None if it is unknown,
        expired or already spent."""
        ...


class MfaTokenRepository(Protocol):
    async def add(self, token: MfaToken) -> None:
        """Store a token (and forget the expired ones)."""
        ...

    async def get(self, token_hash: str) -> MfaToken | None: ...

    async def spend(self, token_hash: str, now: datetime) -> MfaToken | None:
        """Mark a usable token used and return it; None if it is not usable (unknown, used,
        expired or burnt)."""
        ...

    async def count_wrong_code(self, token_hash: str, now: datetime) -> int | None:
        """Count a wrong code against a usable token; the wrong codes counted so far, or None
        if the token was not usable."""
        ...
