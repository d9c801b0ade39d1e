"""The Limiter contract on every backend, Redis atomicity, and the fallback when Redis is gone."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis
import structlog

from bastion.adapters.memory.limiter import MemoryLimiter
from bastion.adapters.redis.limiter import FallbackLimiter, RedisLimiter
from bastion.ratelimit.model import Count, LimiterStatus
from bastion.ratelimit.ports import Limiter
from tests.support import (
    SmtpServer,
    SpareRedis,
    free_port,
    make_settings,
    random_email,
    running_app,
)

T0 = 1_900_000_000.0


@pytest.fixture(params=["memory", "redis"])
async def limiter(
    request: pytest.FixtureRequest, redis_url: str, redis_key_prefix: str
) -> AsyncIterator[Limiter]:
    backend: Limiter = (
        MemoryLimiter()
        if request.param == "memory"
        else RedisLimiter(redis_url, f"{redis_key_prefix}{secrets.token_hex(4)}:")
    )
    yield backend
    await backend.close()


async def test_a_sliding_window_counts_up_to_its_limit(limiter: Limiter) -> None:
    states = [await limiter.hit("window", 60, 3, T0 + i) for i in range(4)]
    assert [s.allowed for s in states] == [True, True, True, False]
    assert [s.count for s in states] == [1, 2, 3, 3]
    assert states[-1].oldest == T0


async def test_events_leave_the_window_one_window_later(limiter: Limiter) -> None:
    await limiter.hit("slide", 60, 2, T0)
    await limiter.hit("slide", 60, 2, T0 + 30.5)
    assert not (await limiter.hit("slide", 60, 2, T0 + 59.9)).allowed
    later = await limiter.hit("slide", 60, 2, T0 + 60)
    assert later.allowed and later.count == 2 and later.oldest == T0 + 30.5


async def test_discarding_windows_forgets_all_their_events(limiter: Limiter) -> None:
    for key in ("cleared", "also-cleared", "kept"):
        for i in range(3):
            await limiter.hit(key, 600, 3, T0 + i)
    await limiter.discard({}, ["cleared", "also-cleared"])
    assert (await limiter.hit("cleared", 600, 3, T0 + 4)).count == 1
    assert (await limiter.hit("also-cleared", 600, 3, T0 + 4)).count == 1
    assert not (await limiter.hit("kept", 600, 3, T0 + 4)).allowed


async def test_a_block_engages_once_and_lifts_on_time(limiter: Limiter) -> None:
    assert await limiter.blocked_until(["blocked"], T0) == [None]
    assert await limiter.block("blocked", T0 + 1800, T0)
    assert not await limiter.block("blocked", T0 + 3600, T0 + 10)
    assert await limiter.blocked_until(["blocked", "other"], T0 + 1799) == [T0 + 1800, None]
    assert await limiter.blocked_until(["blocked"], T0 + 1800) == [None]
    assert await limiter.block("blocked", T0 + 3600, T0 + 1800)


async def test_hits_in_turn_read_blocks_in_the_same_call(limiter: Limiter) -> None:
    await limiter.block("engaged", T0 + 60, T0)
    await limiter.block("lifted", T0 + 5, T0)

    states, ends = await limiter.hit_in_turn(
        [Count("attempts", 60, 1, ("lifted", "never")), Count("other", 60, 5)], T0 + 10
    )
    assert [state.count if state else None for state in states] == [1, 1]
    assert states[0] is not None and states[0].allowed and states[0].event is not None
    assert ends == {"lifted": None, "never": None}
    states, ends = await limiter.hit_in_turn([Count("attempts", 60, 5, ("engaged",))], T0 + 10)
    assert states == [None], "a count is skipped while one of its blocks is in force"
    assert ends == {"engaged": T0 + 60}


async def test_the_first_full_window_ends_the_turn(limiter: Limiter) -> None:
    await limiter.hit("full", 60, 1, T0)

    states, _ = await limiter.hit_in_turn(
        [Count("before", 60, 5), Count("full", 60, 1), Count("after", 60, 5)], T0 + 1
    )
    before, full, after = states
    assert before is not None and before.allowed
    assert full is not None and not full.allowed and full.count == 1 and full.oldest == T0
    assert after is None
    assert (await limiter.hit("after", 60, 1, T0 + 2)).allowed, "nothing was counted after it"


async def test_counted_events_can_be_taken_back(limiter: Limiter) -> None:
    first = await limiter.hit("taken-back", 600, 2, T0)
    second = await limiter.hit("taken-back", 600, 2, T0 + 1)
    other = await limiter.hit("other", 600, 1, T0)
    assert first.event is not None and second.event is not None and other.event is not None
    assert first.event != second.event
    assert (await limiter.hit("taken-back", 600, 2, T0 + 2)).event is None, "refused: no event"
    await limiter.discard({"taken-back": first.event, "other": other.event})
    again = await limiter.hit("taken-back", 600, 2, T0 + 3)
    assert again.allowed and again.count == 2 and again.oldest == T0 + 1
    assert (await limiter.hit("other", 600, 1, T0 + 3)).allowed


async def test_keys_are_independent(limiter: Limiter) -> None:
    await limiter.hit("a", 60, 1, T0)
    assert (await limiter.hit("b", 60, 1, T0)).allowed
    await limiter.block("a", T0 + 60, T0)
    assert await limiter.blocked_until(["b"], T0) == [None]


async def test_redis_hands_out_each_slot_once_under_concurrency(
    redis_url: str, redis_key_prefix: str
) -> None:
    prefix = f"{redis_key_prefix}{secrets.token_hex(4)}:"
    workers = [RedisLimiter(redis_url, prefix) for _ in range(4)]
    try:
        states = await asyncio.gather(
            *(workers[i % 4].hit("race", 60, 5, T0 + i / 1000) for i in range(40))
        )
        engaged = await asyncio.gather(*(w.block("race-block", T0 + 60, T0) for w in workers))
    finally:
        for worker in workers:
            await worker.close()
    assert sum(s.allowed for s in states) == 5
    assert sum(engaged) == 1


async def test_redis_keys_live_under_the_prefix_and_expire(
    redis_url: str, redis_key_prefix: str
) -> None:
    prefix = f"{redis_key_prefix}{secrets.token_hex(4)}:"
    limiter = RedisLimiter(redis_url, prefix)
    try:
        await limiter.hit("login:ip-failures:198.51.100.7", 600, 5, T0)
        await limiter.block("login:ip-block:198.51.100.7", T0 + 1800, T0)
    finally:
        await limiter.close()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}*"))
        assert keys == [
            f"{prefix}block:login:ip-block:198.51.100.7",
            f"{prefix}window:login:ip-failures:198.51.100.7",
        ]
        assert all(0 < client.pttl(key) <= 1_800_000 for key in keys)
    finally:
        client.close()


async def test_the_fallback_keeps_limiting_in_memory_and_returns_to_redis(
    spare_redis: SpareRedis,
) -> None:
    limiter = FallbackLimiter(
        RedisLimiter(spare_redis.url, "fallback:"), MemoryLimiter(), probe_interval=0.05
    )
    try:
        with structlog.testing.capture_logs() as logs:
            assert (await limiter.hit("k", 60, 2, T0)).count == 1
            assert limiter.status() is LimiterStatus.OK

            spare_redis.stop()
            outage = [await limiter.hit("k", 60, 2, T0 + i) for i in range(1, 4)]
            assert [s.allowed for s in outage] == [True, True, False], "never unlimited"
            assert limiter.status() is LimiterStatus.DEGRADED
            assert await limiter.block("b", T0 + 60, T0)
            assert await limiter.blocked_until(["b"], T0 + 1) == [T0 + 60]
            await limiter.discard({}, ["k"])
            assert (await limiter.hit("k", 60, 2, T0 + 4)).count == 1

            spare_redis.start()
            await asyncio.sleep(0.1)
            back = await limiter.hit("k", 60, 2, T0 + 5)
            assert limiter.status() is LimiterStatus.OK
            assert back.allowed
            with redis.Redis.from_url(spare_redis.url) as client:
                assert client.exists("fallback:window:k") == 1
    finally:
        await limiter.close()
    events = [entry["event"] for entry in logs]
    assert events.count("limiter.redis_unavailable") == 1
    assert events.count("limiter.redis_restored") == 1
    assert next(e for e in logs if e["event"] == "limiter.redis_unavailable")["log_level"] == (
        "error"
    )


async def test_an_app_whose_redis_is_unreachable_still_locks_out_and_reports_degraded(
    postgresql_url: str, smtp: SmtpServer
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(postgresql_url, smtp.url, redis_url=closed, login_max_failures=3)
    async with running_app(settings) as (client, services):
        email = random_email("fallback")
        answers = [
            await client.post(
                "/api/v1/auth/login", json={"email": email, "password": "Wrong-Password-1"}
            )
            for _ in range(4)
        ]
        assert [r.status_code for r in answers] == [401, 401, 401, 429]
        assert int(answers[-1].headers["Retry-After"]) > 0
        assert services.limiter.status() is LimiterStatus.DEGRADED
        ready = await client.get("/readyz")
        assert ready.json()["redis"] == "degraded"
        scrape = await client.get("/metrics")
        assert "bastion_limiter_degraded 1.0" in scrape.text
