"""Session lifetimes, liveness caching, refresh tokens and the refresh cookie, without I/O."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

from bastion.core.secrets import hash_token, new_token
from bastion.sessions.liveness import SessionLiveness
from bastion.sessions.model import needs_touch, new_session, session_lifetime
from bastion.sessions.responses import refresh_cookie
from bastion.tokens.model import access_token_expiry

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DAY = 86400


def test_a_remembered_session_lasts_the_remember_me_ttl_and_others_the_session_ttl() -> None:
    assert session_lifetime(True, DAY, 30 * DAY) == timedelta(days=30)
    assert session_lifetime(False, DAY, 30 * DAY) == timedelta(days=1)


def test_a_session_expiry_is_fixed_at_login() -> None:
    session = new_session(
        uuid.uuid4(), NOW, timedelta(days=30), remember_me=True, ip="203.0.113.1", user_agent="ua"
    )
    assert session.created_at == session.last_seen_at == NOW
    assert session.expires_at == NOW + timedelta(days=30)
    assert session.remember_me is True


def test_a_very_long_user_agent_is_truncated() -> None:
    session = new_session(
        uuid.uuid4(), NOW, timedelta(days=1), remember_me=False, ip=None, user_agent="x" * 5000
    )
    assert session.user_agent == "x" * 512


def test_a_session_is_active_until_it_expires_or_is_revoked() -> None:
    session = new_session(
        uuid.uuid4(), NOW, timedelta(hours=1), remember_me=False, ip=None, user_agent=None
    )
    assert session.is_active(NOW + timedelta(minutes=59))
    assert not session.is_active(NOW + timedelta(hours=1))
    revoked = dataclasses.replace(session, revoked_at=NOW)
    assert not revoked.is_active(NOW)


def test_last_seen_is_written_at_most_once_a_minute() -> None:
    assert not needs_touch(NOW, NOW + timedelta(seconds=59))
    assert needs_touch(NOW, NOW + timedelta(seconds=60))


def test_an_access_token_never_outlives_its_session() -> None:
    ttl = timedelta(hours=1)
    assert access_token_expiry(NOW, ttl, NOW + timedelta(days=1)) == NOW + ttl
    assert access_token_expiry(NOW, ttl, NOW + timedelta(minutes=5)) == NOW + timedelta(minutes=5)


def test_a_session_seen_live_is_trusted_only_until_forgotten() -> None:
    liveness = SessionLiveness(ttl_seconds=60)
    session_id = uuid.uuid4()
    assert not liveness.known_live(session_id)
    liveness.remember(session_id)
    assert liveness.known_live(session_id)
    liveness.forget([session_id])
    assert not liveness.known_live(session_id)


def test_a_zero_liveness_cache_always_asks_the_database() -> None:
    liveness = SessionLiveness(ttl_seconds=0)
    session_id = uuid.uuid4()
    liveness.remember(session_id)
    assert not liveness.known_live(session_id)


def test_refresh_tokens_carry_256_random_bits_and_are_stored_as_their_sha256() -> None:
    token = new_token()
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
    assert token != new_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in hash_token(token)


def test_the_refresh_cookie_is_http_only_strict_and_scoped_to_the_auth_api() -> None:
    assert refresh_cookie("abc", 2592000, secure=True) == (
        "bastion_refresh=abc; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=2592000"
    )
    assert refresh_cookie("abc", 60, secure=False) == (
        "bastion_refresh=abc; HttpOnly; SameSite=Strict; Path=/api/v1/auth; Max-Age=60"
    )


def test_clearing_the_refresh_cookie_expires_it_at_once() -> None:
    assert refresh_cookie("", -5, secure=True).endswith("; Max-Age=0")


def test_only_sessions_in_use_past_half_their_trusted_time_are_lapsing() -> None:
    liveness = SessionLiveness(ttl_seconds=10)
    used_old, unused_old, used_fresh = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    six_seconds_ago = time.monotonic() - 6
    liveness.remember(used_old, confirmed_at=six_seconds_ago)
    liveness.remember(unused_old, confirmed_at=six_seconds_ago)
    liveness.remember(used_fresh)
    assert liveness.known_live(used_old) and liveness.known_live(used_fresh)

    assert liveness.lapsing(limit=10) == [used_old]
    assert liveness.lapsing(limit=0) == []
    liveness.remember(used_old)
    assert liveness.lapsing(limit=10) == []
