from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bastion.core.clock import FrozenClock
from bastion.tokens.model import (
    KeyState,
    SigningKey,
    access_token_expiry,
    has_signer,
    key_statuses,
    published,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(hours=1)


def key(kid: str, created_at: datetime) -> SigningKey:
    return SigningKey(kid=kid, public_key=b"p", private_key_sealed=b"s", created_at=created_at)


def test_an_access_token_expires_after_its_ttl_inside_a_long_session() -> None:
    assert access_token_expiry(T0, TTL, T0 + timedelta(days=30)) == T0 + TTL


def test_an_access_token_never_outlives_its_session() -> None:
    assert access_token_expiry(T0, TTL, T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=5)


def test_the_newest_key_signs_and_the_previous_verifies_for_one_token_lifetime() -> None:
    old, new = key("old", T0), key("new", T0 + timedelta(days=1))
    statuses = key_statuses([old, new], TTL)
    assert [(s.key.kid, s.signing) for s in statuses] == [("new", True), ("old", False)]
    assert statuses[1].verifies_until == new.created_at + TTL


def test_a_superseded_key_is_published_until_its_tokens_have_expired() -> None:
    clock = FrozenClock(T0 + timedelta(days=1))
    statuses = key_statuses([key("old", T0), key("new", T0 + timedelta(days=1))], TTL)
    assert {s.key.kid for s in published(statuses, clock.now())} == {"old", "new"}
    clock.advance(TTL.total_seconds())
    assert {s.key.kid for s in published(statuses, clock.now())} == {"new"}


def test_keys_created_in_a_race_resolve_to_one_signer() -> None:
    statuses = key_statuses([key("b", T0), key("a", T0)], TTL)
    assert [s.signing for s in statuses] == [True, False]


def test_a_revoked_key_neither_signs_nor_is_published_and_the_newest_other_key_signs() -> None:
    old, leaked = key("old", T0), key("leaked", T0 + timedelta(days=1))
    leaked = replace(leaked, revoked_at=T0 + timedelta(days=2))
    replacement = key("new", T0 + timedelta(days=2))
    statuses = key_statuses([old, leaked, replacement], TTL)
    assert [(s.key.kid, s.state) for s in statuses] == [
        ("new", KeyState.SIGNER),
        ("old", KeyState.VERIFYING),
        ("leaked", KeyState.REVOKED),
    ]
    assert statuses[2].published_until == T0 + timedelta(days=2)
    assert statuses[0].published_until is None
    assert {s.key.kid for s in published(statuses, T0 + timedelta(days=2))} == {"new", "old"}
    assert has_signer([leaked]) is False and has_signer([leaked, old]) is True
