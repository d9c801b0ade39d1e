"""revocation="events": Bastion's event stream, followed by one connection per verifier.

These run against the contract's SSE server in ``fake_bastion``; pointed at a real Bastion they
would read the same, with its log-out, password change and key revocation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator

import pytest

from bastion_verifier import TokenRevoked, Verifier
from clock import Clock
from fake_bastion import Event, FakeBastion, StreamRequest

WITHIN = 1.0  # the contract: a revocation is refused within a second


def events_verifier(fake: FakeBastion, clock: Clock) -> Verifier:
    return Verifier(
        issuer=fake.issuer,
        audience=fake.audience,
        revocation="events",
        service_key=fake.service_key,
        clock=clock,
    )


async def next_second() -> None:
    """Wait until the clock's second changes: tokens issued from then on are newer than
    anything that happened before, to the second that ``iat`` records. (After the stream opens,
    the stream alone vouches for them: Bastion is never asked about them.)"""
    await asyncio.sleep(math.floor(time.time()) + 1.02 - time.time())


@pytest.fixture
async def listening(fake: FakeBastion, clock: Clock) -> AsyncIterator[Verifier]:
    async with events_verifier(fake, clock) as verifier:
        yield verifier


async def refused_within(verifier: Verifier, token: str, seconds: float = WITHIN) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await verifier.verify_async(token)
        except TokenRevoked:
            return
        assert time.monotonic() < deadline, f"still accepted after {seconds} s"
        await asyncio.sleep(0.01)


async def test_a_logout_is_refused_within_a_second_with_no_request_per_token(
    fake: FakeBastion, listening: Verifier
) -> None:
    await next_second()
    issued, other = fake.log_in(), fake.log_in()
    for _ in range(3):
        await listening.verify_async(issued.token)
        listening.verify(issued.token)
    fake.log_out(issued)
    await refused_within(listening, issued.token)
    with pytest.raises(TokenRevoked):
        listening.verify(issued.token)
    with pytest.raises(TokenRevoked):
        await listening.verify_async(fake.refresh(issued).token)
    await listening.verify_async(other.token)
    assert fake.state.verify_token_requests == 0


async def test_the_stream_opens_from_now_with_the_service_key(
    fake: FakeBastion, clock: Clock
) -> None:
    fake.publish("session.revoked", sid="older", user_id="someone")
    async with events_verifier(fake, clock):
        assert fake.state.stream_requests == [StreamRequest(f"Bearer {fake.service_key}", None)]


async def test_a_dropped_connection_resumes_from_the_last_event_seen(
    fake: FakeBastion, listening: Verifier
) -> None:
    await next_second()
    seen = fake.log_in()
    fake.log_out(seen)
    await refused_within(listening, seen.token)
    issued = fake.log_in()
    await listening.verify_async(issued.token)
    fake.drop_streams()
    fake.log_out(issued)
    await refused_within(listening, issued.token)
    assert fake.state.stream_requests[-1] == StreamRequest(
        f"Bearer {fake.service_key}", str(fake.state.events[0].id)
    )
    assert fake.state.verify_token_requests == 0


async def test_nothing_is_missed_across_a_bastion_restart(
    fake: FakeBastion, listening: Verifier
) -> None:
    await next_second()
    seen = fake.log_in()
    fake.log_out(seen)
    await refused_within(listening, seen.token)
    issued = fake.log_in()
    await listening.verify_async(issued.token)
    fake.stop()
    fake.log_out(issued)  # recorded while no stream can carry it
    await asyncio.sleep(0.3)
    fake.start()
    # The reconnection backs off while Bastion is down; once back, the event is replayed.
    await refused_within(listening, issued.token, seconds=5)
    assert fake.state.stream_requests[-1].last_event_id == "1"
    assert fake.state.verify_token_requests == 0


async def test_a_reconnection_with_no_event_seen_yet_confirms_older_tokens_with_bastion(
    fake: FakeBastion, listening: Verifier
) -> None:
    issued = fake.log_in()
    await listening.verify_async(issued.token)
    fake.stop()
    fake.log_out(issued)  # no position to resume from: the new stream will not carry it
    await asyncio.sleep(0.3)
    fake.start()
    await refused_within(listening, issued.token, seconds=5)
    assert fake.state.stream_requests[-1].last_event_id is None
    assert fake.state.verify_token_requests >= 1


async def test_after_a_410_every_token_issued_before_the_reconnection_is_refused(
    fake: FakeBastion, listening: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    fake.publish("user.registered", user_id="someone")
    untouched = fake.log_in()
    await listening.verify_async(untouched.token)
    await asyncio.sleep(0.1)  # the event has arrived: the stream's position is its id
    with caplog.at_level(logging.WARNING, logger="bastion_verifier"):
        fake.forget_events()
        fake.drop_streams()
        await refused_within(listening, untouched.token)
        await fake.wait_for_streams(1)
    gone, resync = fake.state.stream_requests[-2:]
    assert (gone.last_event_id, resync.last_event_id) == ("1", None)
    assert "(410)" in caplog.text
    assert "refused until it expires" in caplog.text
    await next_second()
    with pytest.raises(TokenRevoked):
        await listening.verify_async(untouched.token)
    await listening.verify_async(fake.log_in().token)
    await listening.verify_async(fake.refresh(untouched).token)


@pytest.mark.parametrize(
    "event_type",
    ["user.disabled", "user.deleted", "user.role_changed", "password.reset", "password.changed"],
)
async def test_a_change_to_the_account_voids_the_users_earlier_tokens(
    fake: FakeBastion, listening: Verifier, event_type: str
) -> None:
    issued, someone_else = fake.log_in(), fake.log_in()
    await listening.verify_async(issued.token)
    fake.publish(event_type, user_id=issued.sub)
    await refused_within(listening, issued.token)
    await listening.verify_async(someone_else.token)


async def test_tokens_issued_after_a_password_change_are_accepted(
    fake: FakeBastion, listening: Verifier
) -> None:
    issued = fake.log_in()
    fake.change_password(issued.sub)
    await refused_within(listening, issued.token)
    await next_second()
    await listening.verify_async(fake.log_in(sub=issued.sub).token)


async def test_a_revoked_signing_key_refuses_every_token_it_signed(
    fake: FakeBastion, listening: Verifier
) -> None:
    old = fake.log_in()
    fake.rotate_key()
    new = fake.log_in()
    await listening.verify_async(old.token)
    fake.revoke_key(old.kid)
    await refused_within(listening, old.token)
    await listening.verify_async(new.token)


async def test_tokens_from_before_the_verifier_started_are_confirmed_once_with_bastion(
    fake: FakeBastion, clock: Clock
) -> None:
    an_hour_ago = int(time.time()) - 3600
    live, ended = fake.log_in(iat=an_hour_ago), fake.log_in(iat=an_hour_ago)
    fake.log_out(ended)  # before the verifier listened: only Bastion knows
    async with events_verifier(fake, clock) as verifier:
        with pytest.raises(TokenRevoked):
            await verifier.verify_async(ended.token)
        await verifier.verify_async(live.token)
        # Bastion's answer may come from its one-second session cache: it confirms the
        # session only when asked a second after the stream opened.
        clock.advance(2)
        verifier.verify(live.token)
        asked = fake.state.verify_token_requests
        clock.advance(2)
        for _ in range(3):
            await verifier.verify_async(live.token)
        assert fake.state.verify_token_requests == asked == 3
        fake.log_out(live)
        await refused_within(verifier, live.token)


async def test_with_the_stream_refused_tokens_are_checked_with_bastion(
    fake: FakeBastion, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    issued = fake.log_in()
    verifier = Verifier(
        issuer=fake.issuer,
        audience=fake.audience,
        revocation="events",
        service_key="bsk_not-a-key-bastion-knows",
        clock=clock,
    )
    with caplog.at_level(logging.ERROR, logger="bastion_verifier"):
        async with verifier:
            await verifier.verify_async(issued.token)
            assert fake.state.verify_token_requests == 1
            fake.log_out(issued)
            clock.advance(1)
            with pytest.raises(TokenRevoked):
                await verifier.verify_async(issued.token)
    assert "Bastion refused the event stream: status 401" in caplog.text
    assert "bsk_not-a-key" not in caplog.text


async def test_malformed_events_are_skipped_and_the_stream_goes_on(
    fake: FakeBastion, listening: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    issued = fake.log_in()
    with caplog.at_level(logging.WARNING, logger="bastion_verifier"):
        with fake.state.condition:
            fake.state.events.append(Event(1, "session.revoked", "not json"))
            fake.state.events.append(Event(2, "session.revoked", '["a list"]'))
            fake.state.condition.notify_all()
        fake.publish("session.revoked", user_id=issued.sub)
        fake.publish("mfa.changed", user_id=issued.sub)
        fake.log_out(issued)
        await refused_within(listening, issued.token)
    assert "not a JSON object" in caplog.text
    assert "without its subject" in caplog.text


async def test_events_mode_needs_a_service_key(
    fake: FakeBastion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BASTION_SERVICE_KEY", raising=False)
    with pytest.raises(ValueError, match="BASTION_SERVICE_KEY"):
        Verifier(issuer=fake.issuer, audience=fake.audience, revocation="events")
    with pytest.raises(ValueError, match="bsk_"):
        Verifier(
            issuer=fake.issuer, audience=fake.audience, revocation="events", service_key="secret"
        )
    monkeypatch.setenv("BASTION_SERVICE_KEY", fake.service_key)
    async with Verifier(issuer=fake.issuer, audience=fake.audience, revocation="events"):
        assert fake.state.stream_requests[-1].authorization == f"Bearer {fake.service_key}"


async def test_a_stopped_verifier_closes_its_stream_and_refuses_to_vouch(
    fake: FakeBastion, clock: Clock
) -> None:
    verifier = events_verifier(fake, clock)
    issued = fake.log_in()
    with pytest.raises(RuntimeError, match="verifier.start"):
        await verifier.verify_async(issued.token)
    async with verifier:
        await fake.wait_for_streams(1)
    await fake.wait_for_streams(0)
    with pytest.raises(RuntimeError, match="verifier.start"):
        verifier.verify(issued.token)
