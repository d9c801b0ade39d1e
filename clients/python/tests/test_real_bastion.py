"""Against a real ``bastion serve``: its tokens, its keys, its log-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from bastion_verifier import InvalidToken, TokenExpired, TokenRevoked, Verifier
from bastion_verifier.verifier import DEFAULT_LEEWAY_SECONDS
from clock import Clock
from forge import forgeries, kid_of
from real_bastion import RealBastion

MakeVerifier = Callable[..., AbstractAsyncContextManager[Verifier]]


@pytest.fixture
def verifier_of(bastion: RealBastion, clock: Clock) -> MakeVerifier:
    """A verifier of ``bastion``'s tokens; keyword arguments override its settings."""

    def make(**settings: Any) -> AbstractAsyncContextManager[Verifier]:
        values: dict[str, Any] = {
            "issuer": bastion.issuer,
            "audience": bastion.audience,
            "clock": clock,
        }
        values.update(settings)
        return Verifier(**values)

    return make


@pytest.fixture
async def verifier(verifier_of: MakeVerifier) -> AsyncIterator[Verifier]:
    async with verifier_of() as verifier:
        yield verifier


async def test_bastions_tokens_verify_with_its_default_issuer_and_audience(
    bastion: RealBastion, bastion_user: str, verifier: Verifier
) -> None:
    session = bastion.log_in(bastion_user)
    for claims in (await verifier.verify_async(session.token), verifier.verify(session.token)):
        assert (claims.email, claims.role, claims.sid) == (bastion_user, "user", session.sid)
        # A password log-in: assurance level 1 by a password, proved when the session began.
        assert (claims.aal, claims.amr) == ("aal1", ("pwd",))
        assert abs((claims.auth_time - claims.iat).total_seconds()) <= 1
        assert claims.exp > claims.iat


async def test_a_wrong_audience_or_issuer_is_refused(
    bastion: RealBastion, bastion_user: str, verifier_of: MakeVerifier
) -> None:
    token = bastion.log_in(bastion_user).token
    async with verifier_of(audience="billing") as verifier:
        with pytest.raises(InvalidToken):
            await verifier.verify_async(token)
    async with verifier_of(issuer="https://auth.example.com", bastion_url=bastion.url) as verifier:
        with pytest.raises(InvalidToken):
            await verifier.verify_async(token)


async def test_algorithm_tricks_with_bastions_own_key_are_refused(
    bastion: RealBastion, bastion_user: str, verifier: Verifier
) -> None:
    token = bastion.log_in(bastion_user).token
    await verifier.verify_async(token)
    for trick, forged in forgeries(token, bastion.jwks()).items():
        with pytest.raises(InvalidToken):
            await verifier.verify_async(forged)
            pytest.fail(f"{trick} was accepted")


async def test_a_token_is_refused_once_expired(
    bastion: RealBastion, bastion_user: str, verifier: Verifier, clock: Clock
) -> None:
    token = bastion.log_in(bastion_user).token
    claims = await verifier.verify_async(token)
    clock.advance(claims.exp.timestamp() - clock() + DEFAULT_LEEWAY_SECONDS - 1)
    await verifier.verify_async(token)
    clock.advance(1)
    with pytest.raises(TokenExpired):
        await verifier.verify_async(token)


async def test_after_keys_rotate_new_tokens_verify_and_old_ones_stay_valid(
    bastion: RealBastion, bastion_user: str, verifier: Verifier
) -> None:
    before = bastion.log_in(bastion_user).token
    await verifier.verify_async(before)
    new_kid = bastion.rotate_keys()
    after = bastion.log_in(bastion_user).token
    assert kid_of(after) == new_kid != kid_of(before)
    await verifier.verify_async(after)
    await verifier.verify_async(before)


async def test_offline_verification_accepts_a_logged_out_token_until_it_expires(
    bastion: RealBastion, bastion_user: str, verifier: Verifier
) -> None:
    session = bastion.log_in(bastion_user)
    bastion.log_out(session.token)
    await verifier.verify_async(session.token)


async def test_check_mode_refuses_a_logged_out_token_within_a_second(
    bastion: RealBastion, bastion_user: str, verifier_of: MakeVerifier, clock: Clock
) -> None:
    session = bastion.log_in(bastion_user)
    async with verifier_of(revocation="check") as verifier:
        await verifier.verify_async(session.token)
        bastion.log_out(session.token)
        clock.advance(1)
        with pytest.raises(TokenRevoked):
            await verifier.verify_async(session.token)
        with pytest.raises(TokenRevoked):
            verifier.verify(session.token)


async def refused_within(verifier: Verifier, token: str, seconds: float) -> float:
    """How long after now ``token`` is first refused as revoked (failing after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            await verifier.verify_async(token)
        except TokenRevoked:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    pytest.fail(f"the token was still accepted {seconds} s after the logout")


async def test_events_mode_refuses_a_logged_out_token_within_a_second_across_a_reconnect(
    bastion: RealBastion, bastion_user: str, verifier_of: MakeVerifier
) -> None:
    async with verifier_of(revocation="events", service_key=bastion.service_key()) as verifier:
        # Tokens issued from the next second on are vouched for by the stream alone: no
        # verify-token call can be what refuses them.
        await asyncio.sleep(1.1)
        session = bastion.log_in(bastion_user)
        await verifier.verify_async(session.token)
        bastion.log_out(session.token)
        assert await refused_within(verifier, session.token, 1.0) < 1.0

        bastion.restart()
        # Logged in and out at once, perhaps before the verifier is back: it resumes from its
        # Last-Event-ID and misses nothing.
        later = bastion.log_in(bastion_user)
        await verifier.verify_async(later.token)
        bastion.log_out(later.token)
        assert await refused_within(verifier, later.token, 1.0) < 1.0
