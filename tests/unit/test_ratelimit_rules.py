"""The window and lockout arithmetic, with time passed in."""

from __future__ import annotations

from bastion.adapters.memory.limiter import MemoryLimiter
from bastion.ratelimit.model import (
    Hit,
    LoginRules,
    Rule,
    WindowState,
    account_key,
    account_protection_reached,
    admit,
    block_remaining,
    ip_lockout_reached,
    ip_subject,
    live_hits,
    seconds_until,
    usage,
)

T0 = 1_900_000_000.0
RULES = LoginRules(
    max_failures=5,
    failure_window=600,
    block_seconds=1800,
    account_max_failures=50,
    account_block_seconds=900,
)


def test_a_window_admits_events_up_to_its_limit_then_refuses() -> None:
    hits: list[Hit] = []
    decisions = []
    for second in range(4):
        hits, allowed = admit(hits, (T0 + second, f"e{second}"), window=60, limit=3)
        decisions.append(allowed)
    assert decisions == [True, True, True, False]
    assert len(hits) == 3, "a refused event is not counted"


def test_an_event_leaves_the_window_exactly_one_window_later() -> None:
    hits = [(T0, "a"), (T0 + 30, "b")]
    assert live_hits(hits, T0 + 59.9, 60) == hits
    assert live_hits(hits, T0 + 60, 60) == [(T0 + 30, "b")]
    assert live_hits(hits, T0 + 90, 60) == []


def test_the_window_slides_instead_of_resetting_on_a_clock_boundary() -> None:
    # Five events in the last ten seconds of one minute: a fixed per-minute window would allow
    # five more at the start of the next minute; a sliding one does not.
    hits: list[Hit] = []
    for second in range(50, 60):
        hits, _ = admit(hits, (T0 + second, str(second)), window=60, limit=5)
    hits, allowed = admit(hits, (T0 + 61, "61"), window=60, limit=5)
    assert not allowed
    hits, allowed = admit(hits, (T0 + 110, "110"), window=60, limit=5)
    assert allowed, "the oldest event left the window 60 s after it happened"


def test_usage_tells_how_many_remain_and_when_a_slot_frees() -> None:
    rule = Rule("register", limit=5, window=3600)
    state = WindowState(allowed=True, count=2, oldest=T0)
    result = usage(rule, state, T0 + 600)
    assert (result.allowed, result.limit, result.remaining, result.reset_after) == (
        True,
        5,
        3,
        3000,
    )
    full = usage(rule, WindowState(allowed=False, count=5, oldest=T0), T0 + 3599.2)
    assert (full.allowed, full.remaining, full.reset_after) == (False, 0, 1)


def test_an_empty_window_resets_one_window_from_now() -> None:
    rule = Rule("ip", limit=100, window=60)
    assert usage(rule, WindowState(allowed=True, count=0, oldest=None), T0).reset_after == 60


def test_retry_after_is_rounded_up_and_never_zero() -> None:
    assert seconds_until(T0 + 10.2, T0) == 11
    assert seconds_until(T0 + 0.001, T0) == 1
    assert seconds_until(T0 - 5, T0) == 1


def test_a_block_counts_down_and_then_lifts() -> None:
    until = T0 + 1800
    assert block_remaining(until, T0) == 1800
    assert block_remaining(until, T0 + 1799.5) == 1
    assert block_remaining(until, T0 + 1800) is None
    assert block_remaining(None, T0) is None


def test_the_ip_lockout_engages_at_the_fifth_failure() -> None:
    assert not ip_lockout_reached(4, RULES)
    assert ip_lockout_reached(5, RULES)


def test_account_protection_engages_at_the_configured_count() -> None:
    assert not account_protection_reached(49, RULES)
    assert account_protection_reached(50, RULES)


def test_ipv6_clients_are_counted_by_their_64_prefix() -> None:
    assert ip_subject("2001:db8:1:2:aaaa::1") == ip_subject("2001:db8:1:2:bbbb::9")
    assert ip_subject("2001:db8:1:2::1") != ip_subject("2001:db8:1:3::1")
    assert ip_subject("2001:db8:1:2::1") == "2001:db8:1:2::/64"


def test_ipv4_addresses_count_alone_even_when_mapped_into_ipv6() -> None:
    assert ip_subject("198.51.100.7") == "198.51.100.7"
    assert ip_subject("::ffff:198.51.100.7") == "198.51.100.7"
    assert ip_subject("198.51.100.7") != ip_subject("198.51.100.8")
    assert ip_subject(None) == "unknown"


def test_account_keys_hide_the_address_and_ignore_nothing_else() -> None:
    key = account_key("alice@example.com")
    assert "alice" not in key
    assert key == account_key("alice@example.com")
    assert key != account_key("alice2@example.com")


async def test_the_memory_limiter_counts_a_sliding_window() -> None:
    limiter = MemoryLimiter()
    states = [await limiter.hit("k", 60, 2, T0 + i) for i in range(3)]
    assert [s.allowed for s in states] == [True, True, False]
    assert [s.count for s in states] == [1, 2, 2]
    assert states[-1].oldest == T0
    assert (await limiter.hit("k", 60, 2, T0 + 60)).allowed
    await limiter.discard({}, ["k"])
    first = await limiter.hit("k", 60, 2, T0 + 61)
    assert first.count == 1 and first.event is not None
    await limiter.discard({"k": first.event})
    assert (await limiter.hit("k", 60, 2, T0 + 62)).count == 1, "a removed event is forgotten"


async def test_the_memory_limiter_engages_a_block_once_until_it_lifts() -> None:
    limiter = MemoryLimiter()
    assert await limiter.block("ip", T0 + 100, T0)
    assert not await limiter.block("ip", T0 + 200, T0 + 1), "already engaged"
    assert await limiter.blocked_until(["ip"], T0 + 50) == [T0 + 100]
    assert await limiter.blocked_until(["ip"], T0 + 100) == [None]
    assert await limiter.block("ip", T0 + 300, T0 + 100), "a new engagement after it lifted"
    assert await limiter.blocked_until(["other"], T0) == [None]
