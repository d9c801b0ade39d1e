"""The event stream's rules: framing, positions, retention and gaps; service keys' form."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from bastion_verifier.sse import EventStreamParser
from hypothesis import given
from hypothesis import strategies as st

from bastion.credentials.model import Scope, ServiceKey, looks_like_key, new_key, parse_scopes
from bastion.events.model import (
    GAP_WAIT_SECONDS,
    Gap,
    Position,
    StreamEventType,
    deliverable,
    frame,
    parse_position,
    resumable,
    sessions_revoked,
    user_event,
)
from bastion.webhooks.model import (
    Delivery,
    DeliveryStatus,
    Webhook,
    WebhookRules,
    failing_since,
    forbidden_address,
    url_problem,
)
from bastion.webhooks.model import payload as webhook_payload

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_a_frame_is_one_event_the_verifiers_parser_reads_back() -> None:
    user_id, sid = uuid.uuid4(), uuid.uuid4()
    [event] = sessions_revoked(user_id, [sid], NOW)
    parser = EventStreamParser()
    [parsed] = parser.feed(frame(type(event)(event.type, event.occurred_at, event.fields, 42)))
    assert (parsed.id, parsed.type) == ("42", "session.revoked")
    assert json.loads(parsed.data) == {
        "type": "session.revoked",
        "occurred_at": NOW.isoformat(),
        "sid": str(sid),
        "user_id": str(user_id),
    }


def test_user_events_carry_the_user_id() -> None:
    user_id = uuid.uuid4()
    event = user_event(StreamEventType.USER_DELETED, user_id, NOW)
    assert event.payload()["user_id"] == str(user_id)


def test_events_happen_at_whole_seconds_as_token_issue_times_do() -> None:
    # A password changed at 12:00:00.700 voids tokens issued before 12:00:00, not a token
    # refreshed at 12:00:00.900 (whose iat reads 12:00:00).
    later = NOW.replace(microsecond=700_000)
    user_id = uuid.uuid4()
    for event in (
        user_event(StreamEventType.PASSWORD_CHANGED, user_id, later),
        *sessions_revoked(user_id, [uuid.uuid4()], later),
    ):
        assert event.occurred_at == NOW


@pytest.mark.parametrize(("header", "position"), [(None, None), ("", None), ("17", 17), (" 3 ", 3)])
def test_a_last_event_id_is_a_position_or_none(header: str | None, position: int | None) -> None:
    assert parse_position(header) == position


@pytest.mark.parametrize("header", ["-1", "abc", "1e3", "١٢", "9" * 19])
def test_anything_else_is_not_a_position(header: str) -> None:
    with pytest.raises(ValueError):
        parse_position(header)


def test_a_kept_event_within_the_retention_is_resumable_and_an_older_one_is_not() -> None:
    kept = Position(newest=10, oldest=1, occurred_at=NOW - WEEK)
    assert resumable(5, kept, NOW, WEEK)
    old = Position(newest=10, oldest=1, occurred_at=NOW - WEEK - timedelta(seconds=1))
    assert not resumable(5, old, NOW, WEEK)


def test_a_position_past_the_newest_event_or_before_the_purged_ones_is_not_resumable() -> None:
    assert not resumable(11, Position(newest=10, oldest=1, occurred_at=None), NOW, WEEK)
    assert not resumable(3, Position(newest=10, oldest=8, occurred_at=None), NOW, WEEK)
    assert not resumable(3, Position(newest=0, oldest=None, occurred_at=None), NOW, WEEK)
    # Just before the oldest kept event: nothing after it is missing.
    assert resumable(7, Position(newest=10, oldest=8, occurred_at=None), NOW, WEEK)


def test_events_that_follow_the_cursor_go_at_once() -> None:
    gap = Gap()
    assert deliverable(4, [5, 6, 7], gap, 0.0) == 3
    assert deliverable(4, [5, 6, 9], gap, 0.0) == 2


def test_a_hole_is_waited_for_then_passed() -> None:
    gap = Gap()
    assert deliverable(4, [6, 7], gap, 100.0) == 0
    assert deliverable(4, [6, 7], gap, 100.0 + GAP_WAIT_SECONDS / 2) == 0
    assert deliverable(4, [6, 7], gap, 100.0 + GAP_WAIT_SECONDS) == 2
    # The hole filled in time: no waiting.
    assert deliverable(4, [5, 6, 7], Gap(), 0.0) == 3


def test_service_keys_have_256_random_bits_and_a_prefix() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith("bsk_") and looks_like_key(key) for key in keys)
    assert all(len(key) >= 4 + 43 for key in keys)


@pytest.mark.parametrize(
    "value", ["", "bsk_", "bsk_short", "Bearer", "eyJhbGciOiJFZERTQSJ9.e30.sig", "bsk_" + "é" * 43]
)
def test_other_strings_are_not_service_keys(value: str) -> None:
    assert not looks_like_key(value)


def test_a_key_grants_its_scopes_until_revoked() -> None:
    key = ServiceKey(uuid.uuid4(), "x", parse_scopes("events:read later:scope"), NOW)
    assert key.scopes == frozenset({Scope.EVENTS_READ})
    assert key.grants(Scope.EVENTS_READ)
    revoked = ServiceKey(key.id, "x", key.scopes, NOW, revoked_at=NOW)
    assert not revoked.grants(Scope.EVENTS_READ)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
        "not-an-ip",
    ],
)
def test_webhooks_may_not_reach_internal_addresses(address: str) -> None:
    assert forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1"])
def test_webhooks_may_reach_public_addresses(address: str) -> None:
    assert not forbidden_address(address)


def test_retries_back_off_exponentially_with_jitter_the_first_within_30_seconds() -> None:
    rules = WebhookRules()
    first = rules.next_attempt(1, NOW, 1.0) - NOW
    assert timedelta(0) < first <= timedelta(seconds=30)
    assert rules.next_attempt(1, NOW, 0.5) - NOW == first / 2
    assert rules.next_attempt(2, NOW, 1.0) - NOW == 2 * first
    assert rules.next_attempt(30, NOW, 1.0) - NOW == rules.max_delay
    assert rules.give_up_after == timedelta(hours=24)


def _failing_all_day(
    latency: timedelta, jitters: list[float], webhook: Webhook
) -> tuple[Webhook, bool]:
    """Every attempt of one delivery, created at NOW, fails; each is made ``latency`` after it
    fell due. The webhook as the worker leaves it, and whether the delivery was given up on."""
    rules = WebhookRules()
    delivery = Delivery(
        1, webhook.id, "msg_1", "user.deleted", {}, DeliveryStatus.PENDING, 0, NOW, NOW
    )
    for attempt, jitter in enumerate(jitters, start=1):
        now = delivery.next_attempt_at + latency
        since = failing_since(webhook, delivery)
        webhook = replace(webhook, enabled=not rules.disables(since, now), failing_since=since)
        if rules.gives_up(delivery, now):
            return webhook, True
        delivery = replace(
            delivery, attempts=attempt, next_attempt_at=rules.next_attempt(attempt, now, jitter)
        )
    return webhook, False


@given(
    latency=st.timedeltas(min_value=timedelta(0), max_value=timedelta(minutes=30)),
    jitters=st.lists(st.floats(min_value=0.5, max_value=1.0), min_size=40, max_size=40),
)
def test_the_attempt_that_gives_a_delivery_up_disables_an_endpoint_that_failed_them_all(
    latency: timedelta, jitters: list[float]
) -> None:
    """However late the worker gets to each attempt (the suite's load once made the endpoint's
    window start after the delivery's, and the last attempt came in between)."""
    fresh = Webhook(uuid.uuid4(), "https://hooks.example.com/", frozenset(), True, NOW)
    webhook, given_up = _failing_all_day(latency, jitters, fresh)
    assert given_up and webhook.enabled is False and webhook.failing_since == NOW


def test_an_endpoint_that_took_a_delivery_meanwhile_is_not_disabled_with_an_older_one() -> None:
    """Its failing window starts after its success, so the older delivery gives up alone."""
    took_one = Webhook(
        uuid.uuid4(), "https://hooks.example.com/", frozenset(), True, NOW, NOW + timedelta(hours=3)
    )
    webhook, given_up = _failing_all_day(timedelta(seconds=1), [1.0] * 40, took_one)
    assert given_up and webhook.enabled is True


def test_a_webhook_body_has_type_time_and_data() -> None:
    user_id = uuid.uuid4()
    body = webhook_payload(user_event(StreamEventType.USER_DELETED, user_id, NOW))
    assert body == {
        "type": "user.deleted",
        "occurred_at": NOW.isoformat(),
        "data": {"user_id": str(user_id)},
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x", False),
        ("http://hooks.example.com/x", True),
        ("ftp://hooks.example.com/x", True),
        ("https://user:pw@hooks.example.com/x", True),
        ("https:///nohost", True),
        ("https://hooks.example.com:99999/", True),
    ],
)
def test_production_takes_only_https_urls_without_credentials(url: str, problem: bool) -> None:
    assert (url_problem(url, allow_http=False) is not None) is problem
