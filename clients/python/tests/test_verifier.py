"""Offline verification against a published JWKS: claims, times, algorithms, keys."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bastion_verifier import InvalidToken, IssuerUnavailable, TokenExpired, Verifier
from bastion_verifier.keys import UNKNOWN_KID_REFETCH_SECONDS, freshness_seconds, parse_jwks
from clock import Clock
from fake_bastion import FakeBastion
from forge import forgeries, unsigned


@pytest.fixture
async def verifier(fake: FakeBastion, clock: Clock) -> AsyncIterator[Verifier]:
    verifier = Verifier(issuer=fake.issuer, audience=fake.audience, clock=clock)
    try:
        yield verifier
    finally:
        await verifier.stop()


async def test_a_valid_token_gives_its_typed_claims(fake: FakeBastion, verifier: Verifier) -> None:
    now = int(time.time())
    issued = fake.log_in(role="admin", email="ada@example.com", iat=now, exp=now + 300)
    for claims in (verifier.verify(issued.token), await verifier.verify_async(issued.token)):
        assert (claims.sub, claims.sid, claims.email, claims.role) == (
            issued.sub,
            issued.sid,
            "ada@example.com",
            "admin",
        )
        assert claims.exp == datetime.fromtimestamp(now + 300, UTC)
        assert (claims.aal, claims.amr, claims.auth_time) == ("aal1", (), claims.iat)
        assert claims.kid == issued.kid


async def test_assurance_claims_come_through(fake: FakeBastion, verifier: Verifier) -> None:
    auth_time = int(time.time()) - 20
    issued = fake.log_in(aal="aal2", amr=["hwk", "user"], auth_time=auth_time)
    claims = await verifier.verify_async(issued.token)
    assert (claims.aal, claims.amr) == ("aal2", ("hwk", "user"))
    assert claims.auth_time == datetime.fromtimestamp(auth_time, UTC)


async def test_a_token_for_another_audience_or_from_another_issuer_is_refused(
    fake: FakeBastion, verifier: Verifier
) -> None:
    for claims in (
        {"aud": "billing"},
        {"aud": ["billing", "reports"]},
        {"iss": "https://evil.example.com"},
        {"iss": fake.issuer + "/"},
        {"iss": None},
        {"aud": None},
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify_async(fake.log_in(**claims).token)
    # A token meant for several audiences, ours among them, is ours.
    await verifier.verify_async(fake.log_in(aud=["billing", fake.audience]).token)


async def test_only_eddsa_signed_by_a_published_key_is_accepted(
    fake: FakeBastion, verifier: Verifier
) -> None:
    genuine = fake.log_in().token
    await verifier.verify_async(genuine)
    for trick, forged in forgeries(genuine, fake.jwks()).items():
        with pytest.raises(InvalidToken):
            await verifier.verify_async(forged)
            pytest.fail(f"{trick} was accepted")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c",
        "..",
        "é.é.é",
        "x" * 100_000,
        unsigned({"sub": "1"}, kid="", alg="EdDSA"),
    ],
)
async def test_malformed_tokens_are_invalid(verifier: Verifier, token: str) -> None:
    with pytest.raises(InvalidToken):
        await verifier.verify_async(token)


async def test_expiry_not_before_and_issued_at_are_judged_with_a_small_leeway(
    fake: FakeBastion, verifier: Verifier, clock: Clock
) -> None:
    now = int(time.time())
    expired = fake.log_in(iat=now - 100, exp=now - 11).token
    with pytest.raises(TokenExpired):
        await verifier.verify_async(expired)
    await verifier.verify_async(fake.log_in(iat=now - 100, exp=now - 5).token)
    with pytest.raises(InvalidToken, match="not valid yet"):
        await verifier.verify_async(fake.log_in(nbf=now + 60).token)
    with pytest.raises(InvalidToken, match="issued in the future"):
        await verifier.verify_async(fake.log_in(iat=now + 60, exp=now + 600).token)
    # The same token, verified once, still expires on time.
    token = fake.log_in(iat=now, exp=now + 60).token
    await verifier.verify_async(token)
    clock.advance(71)
    with pytest.raises(TokenExpired):
        await verifier.verify_async(token)


async def test_the_keys_are_fetched_once_and_kept_while_fresh(
    fake: FakeBastion, verifier: Verifier, clock: Clock
) -> None:
    fake.jwks_cache_control = "public, max-age=60"
    for _ in range(5):
        await verifier.verify_async(fake.log_in().token)
        verifier.verify(fake.log_in().token)
    assert fake.state.jwks_requests == 1
    clock.advance(59)
    await verifier.verify_async(fake.log_in().token)
    assert fake.state.jwks_requests == 1
    clock.advance(2)
    await verifier.verify_async(fake.log_in().token)
    assert fake.state.jwks_requests == 2


async def test_a_rotated_key_is_fetched_on_first_sight_and_old_tokens_stay_valid(
    fake: FakeBastion, verifier: Verifier
) -> None:
    before = fake.log_in()
    await verifier.verify_async(before.token)
    new_kid = fake.rotate_key()
    after = fake.log_in()
    assert after.kid == new_kid
    await verifier.verify_async(after.token)
    await verifier.verify_async(before.token)
    assert fake.state.jwks_requests == 2


async def test_unknown_kids_refetch_the_keys_at_most_once_per_ten_seconds(
    fake: FakeBastion, verifier: Verifier, clock: Clock
) -> None:
    await verifier.verify_async(fake.log_in().token)
    stranger = fake.sign(fake.claims(), kid="0" * 32)
    for _ in range(20):
        with pytest.raises(InvalidToken, match="unknown key"):
            await verifier.verify_async(stranger)
    assert fake.state.jwks_requests == 2
    # A key rotated within those ten seconds waits for the next allowed fetch.
    fake.rotate_key()
    rotated = fake.log_in().token
    with pytest.raises(InvalidToken):
        verifier.verify(rotated)
    clock.advance(UNKNOWN_KID_REFETCH_SECONDS)
    verifier.verify(rotated)
    assert fake.state.jwks_requests == 3


async def test_cache_control_no_store_means_fetching_again_a_second_later(
    fake: FakeBastion, verifier: Verifier, clock: Clock
) -> None:
    fake.jwks_cache_control = "no-store"
    token = fake.log_in().token
    await verifier.verify_async(token)
    await verifier.verify_async(token)
    assert fake.state.jwks_requests == 1
    clock.advance(1)
    await verifier.verify_async(token)
    assert fake.state.jwks_requests == 2


def test_freshness_follows_max_age_and_age_within_bounds() -> None:
    assert freshness_seconds({"cache-control": "public, max-age=60"}) == 60
    assert freshness_seconds({"cache-control": "public, max-age=60", "age": "45"}) == 15
    assert freshness_seconds({"cache-control": "max-age=60", "age": "600"}) == 1
    assert freshness_seconds({"cache-control": 'max-age="120"'}) == 120
    assert freshness_seconds({"cache-control": "max-age=" + "9" * 5000}) == 86400
    assert freshness_seconds({"cache-control": "no-cache, max-age=60"}) == 1
    assert freshness_seconds({"cache-control": "max-age=²"}) == 300
    assert freshness_seconds({}) == 300


def test_only_ed25519_signing_keys_are_taken_from_the_jwks(fake: FakeBastion) -> None:
    good = fake.jwks()["keys"][0]
    keys = parse_jwks(
        {
            "keys": [
                good,
                {**good, "kid": "p256", "kty": "EC", "crv": "P-256"},
                {**good, "kid": "x448", "crv": "Ed448"},
                {**good, "kid": "enc", "use": "enc"},
                {**good, "kid": "short", "x": "AAAA"},
                {**good, "kid": "junk", "x": "!!!"},
                {**good, "kid": 7},
                "not a key",
            ]
        }
    )
    assert list(keys) == [good["kid"]]
    with pytest.raises(ValueError):
        parse_jwks({"keys": "none"})


async def test_without_keys_tokens_are_refused_as_unavailable_until_bastion_answers(
    fake: FakeBastion, verifier: Verifier, clock: Clock
) -> None:
    token = fake.log_in().token
    fake.stop()
    with pytest.raises(IssuerUnavailable):
        await verifier.verify_async(token)
    with pytest.raises(IssuerUnavailable):
        verifier.verify(token)
    fake.start()
    clock.advance(1)
    await verifier.verify_async(token)


async def test_keys_already_held_stay_in_use_while_bastion_is_unreachable(
    fake: FakeBastion, verifier: Verifier, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    token = fake.log_in().token
    await verifier.verify_async(token)
    fake.stop()
    clock.advance(120)
    with caplog.at_level(logging.WARNING, logger="bastion_verifier"):
        await verifier.verify_async(token)
        verifier.verify(token)
    assert "Could not fetch Bastion's keys" in caplog.text
    fake.start()


def test_a_verifier_needs_an_issuer_it_can_reach_and_an_audience() -> None:
    with pytest.raises(ValueError, match="bastion_url"):
        Verifier(issuer="urn:bastion", audience="bastion")
    Verifier(issuer="urn:bastion", audience="bastion", bastion_url="http://bastion:8000")
    with pytest.raises(ValueError):
        Verifier(issuer="https://auth.example.com", audience="")
    with pytest.raises(ValueError, match="revocation"):
        Verifier(issuer="https://auth.example.com", audience="bastion", revocation="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="leeway"):
        Verifier(issuer="https://auth.example.com", audience="bastion", leeway=3600)
