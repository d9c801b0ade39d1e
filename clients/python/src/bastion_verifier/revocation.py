"""The three ways of learning that Bastion revoked a token before it expired."""

from __future__ import annotations

from typing import Literal, Protocol

from bastion_verifier.check import TokenCheck
from bastion_verifier.claims import Claims

RevocationMode = Literal["none", "check", "events"]
REVOCATION_MODES: tuple[RevocationMode, ...] = ("none", "check", "events")


class Revocation(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def check(self, token: str, claims: Claims) -> None:
        """Raise ``TokenRevoked`` (or another ``VerifierError``) if ``token`` may not be used."""

    async def check_async(self, token: str, claims: Claims) -> None: ...


class Offline:
    """``revocation="none"``: a validly signed token is accepted until it expires."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def check(self, token: str, claims: Claims) -> None:
        return None

    async def check_async(self, token: str, claims: Claims) -> None:
        return None


class AskBastion(Offline):
    """``revocation="check"``: Bastion's verify-token is asked, its answer kept for a second."""

    def __init__(self, checker: TokenCheck) -> None:
        self._checker = checker

    def check(self, token: str, claims: Claims) -> None:
        self._checker.check(token)

    async def check_async(self, token: str, claims: Claims) -> None:
        await self._checker.check_async(token)
