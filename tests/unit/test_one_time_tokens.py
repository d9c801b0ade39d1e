from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from bastion.core.one_time_tokens import OneTimeToken, TokenExpired, TokenInvalid, ensure_usable
from bastion.core.secrets import hash_token, new_token

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def token(**changes: object) -> OneTimeToken:
    values: dict[str, object] = {
        "token_hash": "h",
        "user_id": uuid.uuid4(),
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
    }
    values.update(changes)
    return OneTimeToken(**values)  # type: ignore[arg-type]


def test_a_fresh_token_is_usable_until_its_expiry() -> None:
    fresh = token()
    assert ensure_usable(fresh, T0 + timedelta(minutes=59)) is fresh


def test_a_token_is_expired_at_its_expiry() -> None:
    with pytest.raises(TokenExpired):
        ensure_usable(token(), T0 + timedelta(hours=1))


def test_an_unknown_or_used_token_is_invalid_even_when_expired() -> None:
    with pytest.raises(TokenInvalid):
        ensure_usable(None, T0)
    with pytest.raises(TokenInvalid):
        ensure_usable(token(used_at=T0), T0 + timedelta(days=2))


def test_tokens_carry_256_bits_and_are_stored_as_a_hash() -> None:
    value = new_token()
    assert len(value) >= 43
    assert value != new_token()
    assert hash_token(value) != value and len(hash_token(value)) == 64
