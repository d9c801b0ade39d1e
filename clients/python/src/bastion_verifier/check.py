"""Asking Bastion whether a token's session is still live (``GET /api/v1/auth/verify-token``)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bastion_verifier.clients import HttpClients
from bastion_verifier.errors import (
    InvalidToken,
    IssuerUnavailable,
    TokenExpired,
    TokenRevoked,
    VerifierError,
)

log = logging.getLogger("bastion_verifier")

VERIFY_TOKEN_PATH = "/api/v1/auth/verify-token"  # noqa: S105 (a path, not a secret)
# Bastion's answer is reused for at most this long: a revocation reaches us within it.
ANSWER_CACHE_SECONDS = 1.0
ANSWER_CACHE_SIZE = 100_000
# Bastion's 401 codes, as the errors this package raises.
_REFUSALS: dict[str, type[InvalidToken]] = {
    "TOKEN_EXPIRED": TokenExpired,
    "SESSION_REVOKED": TokenRevoked,
}


@dataclass(frozen=True, slots=True)
class Answer:
    asked_at: float  # when the question was sent, by the verifier's clock
    refusal: type[VerifierError] | None


class TokenCheck:
    """Bastion's word on a token, remembered for a second."""

    def __init__(self, bastion_url: str, clock: Callable[[], float], http: HttpClients) -> None:
        self._url = bastion_url + VERIFY_TOKEN_PATH
        self._clock = clock
        self._http = http
        # Insertion order is expiry order, since every answer is kept equally long.
        self._answers: dict[bytes, Answer] = {}
        self._lock = threading.Lock()

    def check(self, token: str) -> Answer:
        """Bastion's answer for ``token``; raises the refusal if it refused."""
        key = _digest(token)
        answer = self._remembered(key)
        if answer is None:
            asked_at = self._clock()
            try:
                response = self._http.sync_client().get(self._url, headers=_bearer(token))
            except httpx.HTTPError as exc:
                raise _unavailable(exc) from None
            answer = self._remember(key, Answer(asked_at, _refusal(response)))
        return _raise_refusal(answer)

    async def check_async(self, token: str) -> Answer:
        key = _digest(token)
        answer = self._remembered(key)
        if answer is None:
            asked_at = self._clock()
            try:
                response = await self._http.async_client().get(self._url, headers=_bearer(token))
            except httpx.HTTPError as exc:
                raise _unavailable(exc) from None
            answer = self._remember(key, Answer(asked_at, _refusal(response)))
        return _raise_refusal(answer)

    def _remembered(self, key: bytes) -> Answer | None:
        answer = self._answers.get(key)
        if answer is None or self._clock() >= answer.asked_at + ANSWER_CACHE_SECONDS:
            return None
        return answer

    def _remember(self, key: bytes, answer: Answer) -> Answer:
        answers = self._answers
        forget_before = self._clock() - ANSWER_CACHE_SECONDS
        with self._lock:
            answers.pop(key, None)
            answers[key] = answer
            while answers:
                oldest = next(iter(answers))
                if answers[oldest].asked_at > forget_before and len(answers) <= ANSWER_CACHE_SIZE:
                    break
                del answers[oldest]
        return answer


def _digest(token: str) -> bytes:
    # The cache holds digests, so a memory dump does not hand out live tokens.
    return hashlib.sha256(token.encode()).digest()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refusal(response: httpx.Response) -> type[VerifierError] | None:
    if response.status_code == httpx.codes.OK:
        return None
    if response.status_code != httpx.codes.UNAUTHORIZED:
        log.warning("Bastion's verify-token answered %s", response.status_code)
        return IssuerUnavailable
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return InvalidToken
    return _REFUSALS.get(code, InvalidToken) if isinstance(code, str) else InvalidToken


def _raise_refusal(answer: Answer) -> Answer:
    if answer.refusal is not None:
        raise answer.refusal()
    return answer


def _unavailable(error: httpx.HTTPError) -> IssuerUnavailable:
    log.warning("Could not reach Bastion's verify-token: %s", error)
    return IssuerUnavailable()
