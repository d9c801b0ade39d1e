"""Sliding windows, lockouts and their arithmetic. Time is passed in as POSIX seconds."""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MINUTE = 60
HOUR = 3600
# One IPv6 customer usually holds a whole /64, so limits count that prefix as one address.
IPV6_PREFIX = 64
# How long an account's consecutive failures are remembered after the last one: long enough that
# a slow attack still adds up, short enough that stale counts from a forgotten typo fade away.
ACCOUNT_FAILURE_MEMORY = 86400


class LimiterStatus(StrEnum):
    """Where limits are kept: Redis (ok), in-process because Redis is down (degraded), or
    in-process by configuration (not configured)."""

    OK = "ok"
    DEGRADED = "degraded"
    NOT_CONFIGURED = "not configured"


@dataclass(frozen=True, slots=True)
class Rule:
    """At most ``limit`` events per sliding ``window`` seconds."""

    name: str
    limit: int
    window: int


@dataclass(frozen=True, slots=True)
class Count:
    """One event to count in the sliding ``window`` of ``key``, up to ``limit`` events; skipped
    while any of the blocks ``unless_blocked`` is in force."""

    key: str
    window: int
    limit: int
    unless_blocked: tuple[str, ...] = ()


def rate_count(rule: Rule, subject: str) -> Count:
    """One request from ``subject`` (a client IP, a user, an account) against ``rule``."""
    return Count(f"rate:{rule.name}:{subject}", rule.window, rule.limit)


# An event in a window: when it happened, and an id to take it back by.
Hit = tuple[float, str]


@dataclass(frozen=True, slots=True)
class WindowState:
    """A window after counting: whether the event fit, how many are in it, the oldest's time,
    and the counted event's id (None when it did not fit)."""

    allowed: bool
    count: int
    oldest: float | None
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """A rate-limit decision, with what the RateLimit-* headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int


@dataclass(frozen=True, slots=True)
class LoginRules:
    max_failures: int
    failure_window: int
    block_seconds: int
    account_max_failures: int
    account_block_seconds: int


def live_hits(hits: Iterable[Hit], now: float, window: int) -> list[Hit]:
    """The events still inside the window ``(now - window, now]``."""
    horizon = now - window
    return [hit for hit in hits if hit[0] > horizon]


def admit(hits: list[Hit], hit: Hit, window: int, limit: int) -> tuple[list[Hit], bool]:
    """The window after one more event, counted only while it stays within ``limit``."""
    current = live_hits(hits, hit[0], window)
    allowed = len(current) < limit
    if allowed:
        current.append(hit)
    return current, allowed


def seconds_until(moment: float, now: float) -> int:
    """Whole seconds from ``now`` until ``moment``, at least 1 (a Retry-After of 0 invites a
    retry storm)."""
    return max(1, math.ceil(moment - now))


def usage(rule: Rule, state: WindowState, now: float) -> Usage:
    """The decision and headers for ``rule``: a slot frees when the oldest event leaves the
    window."""
    reset_at = (state.oldest if state.oldest is not None else now) + rule.window
    return Usage(
        allowed=state.allowed,
        limit=rule.limit,
        remaining=max(rule.limit - state.count, 0),
        reset_after=seconds_until(reset_at, now),
    )


def block_remaining(blocked_until: float | None, now: float) -> int | None:
    """Seconds a block has left, or None when there is no block in force."""
    if blocked_until is None or blocked_until <= now:
        return None
    return seconds_until(blocked_until, now)


def ip_lockout_reached(failures: int, rules: LoginRules) -> bool:
    return failures >= rules.max_failures


def account_protection_reached(consecutive_failures: int, rules: LoginRules) -> bool:
    return consecutive_failures >= rules.account_max_failures


def account_key(normalized_email: str) -> str:
    """The limiter key of an account, known or not: a digest, so Redis holds no addresses."""
    return hashlib.sha256(normalized_email.encode()).hexdigest()[:32]


def ip_subject(ip: str | None) -> str:
    """The limiter key of a client address: the address itself, or its /64 for IPv6."""
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
