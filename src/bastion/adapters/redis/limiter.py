"""Limits kept in Redis, shared by every worker and instance, and the fallback for outages."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.ratelimit.model import Count, LimiterStatus, WindowState
from bastion.ratelimit.ports import Limiter

log = structlog.get_logger("bastion.ratelimit")
T = TypeVar("T")
# A limiter call sits on the login path: an unreachable Redis must cost little before we fall back.
REDIS_TIMEOUT_SECONDS = 0.5
# While Redis is down, one call per interval tries it again; the rest go straight to memory.
PROBE_INTERVAL_SECONDS = 1.0

# A sorted set per window: members are events, scores their times. Blocks are plain keys holding
# when they end. Reading the blocks, then trimming, counting and adding in each window in turn,
# run as one script, so concurrent workers never both take the last slot and a block engaged by
# another worker is seen before any slot is taken.
# KEYS: the windows in turn, then the blocks. ARGV: now, the event id, then for each window its
# length, its limit and the positions in KEYS of the blocks that skip it.
HIT_IN_TURN_SCRIPT = """
local now = tonumber(ARGV[1])
local windows = (#ARGV - 2) / 3
local live = {}
for i = windows + 1, #KEYS do
  local ends = redis.call('GET', KEYS[i])
  if ends and tonumber(ends) > now then
    live[i] = ends
  end
end
local result = {}
local refused = false
for i = 1, windows do
  local window = tonumber(ARGV[i * 3])
  local limit = tonumber(ARGV[i * 3 + 1])
  local skipped = refused
  for position in string.gmatch(ARGV[i * 3 + 2], '%d+') do
    if live[tonumber(position)] then
      skipped = true
    end
  end
  if skipped then
    result[#result + 1] = -1
    result[#result + 1] = 0
    result[#result + 1] = false
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[i])
    local allowed = 0
    if count < limit then
      redis.call('ZADD', KEYS[i], now, ARGV[2])
      count = count + 1
      allowed = 1
    else
      refused = true
    end
    if count > 0 then
      redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
    end
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    result[#result + 1] = allowed
    result[#result + 1] = count
    result[#result + 1] = oldest[2] or false
  end
end
for i = windows + 1, #KEYS do
  result[#result + 1] = live[i] or false
end
return result
"""

BLOCK_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


class RedisLimiter:
    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            # One immediate retry survives a pooled connection that died with a Redis restart.
            retry=Retry(NoBackoff(), 1),
        )
        self._prefix = prefix
        self._hit_in_turn = self._redis.register_script(HIT_IN_TURN_SCRIPT)
        self._block = self._redis.register_script(BLOCK_SCRIPT)

    async def hit(self, key: str, window: int, limit: int, now: float) -> WindowState:
        [state], _ = await self.hit_in_turn([Count(key, window, limit)], now)
        if state is None:
            raise RuntimeError("a count that no block skips is always counted")
        return state

    async def hit_in_turn(
        self, counts: Sequence[Count], now: float
    ) -> tuple[list[WindowState | None], dict[str, float | None]]:
        blocks = list(dict.fromkeys(key for count in counts for key in count.unless_blocked))
        position = {key: len(counts) + 1 + index for index, key in enumerate(blocks)}
        # Unique within the window is all an event id needs; no system call for randomness.
        member = f"{now!r}:{random.getrandbits(48):012x}"
        args: list[str | int] = [repr(now), member]
        for count in counts:
            skipped_by = " ".join(str(position[key]) for key in count.unless_blocked)
            args += [count.window, count.limit, skipped_by]
        reply = await self._hit_in_turn(
            keys=[
                *(self._window(count.key) for count in counts),
                *(self._block_key(key) for key in blocks),
            ],
            args=args,
        )
        states: list[WindowState | None] = []
        for index in range(len(counts)):
            allowed, count, oldest = reply[index * 3 : index * 3 + 3]
            states.append(
                None
                if allowed == -1
                else WindowState(
                    allowed=bool(allowed),
                    count=int(count),
                    oldest=float(oldest) if oldest else None,
                    event=member if allowed else None,
                )
            )
        ends = reply[len(counts) * 3 :]
        return states, {
            key: _live_block_end(end, now) for key, end in zip(blocks, ends, strict=True)
        }

    async def discard(self, events: Mapping[str, str], windows: Sequence[str] = ()) -> None:
        pipeline = self._redis.pipeline(transaction=False)
        for key, event in events.items():
            pipeline.zrem(self._window(key), event)
        if windows:
            pipeline.delete(*(self._window(key) for key in windows))
        await pipeline.execute()

    async def block(self, key: str, until: float, now: float) -> bool:
        ttl_ms = max(1, math.ceil((until - now) * 1000))
        engaged = await self._block(
            keys=[self._block_key(key)], args=[repr(until), repr(now), ttl_ms]
        )
        return bool(engaged)

    async def blocked_until(self, keys: Sequence[str], now: float) -> list[float | None]:
        ends = await self._redis.mget([self._block_key(key) for key in keys])
        return [_live_block_end(end, now) for end in ends]

    def status(self) -> LimiterStatus:
        return LimiterStatus.OK

    async def close(self) -> None:
        await self._redis.aclose()

    # Windows and blocks are different Redis types, so each gets its own namespace.
    def _window(self, key: str) -> str:
        return f"{self._prefix}window:{key}"

    def _block_key(self, key: str) -> str:
        return f"{self._prefix}block:{key}"


def _live_block_end(raw: bytes | str | None, now: float) -> float | None:
    until = float(raw) if raw else None
    return until if until is not None and until > now else None


class FallbackLimiter:
    """Redis while it answers, in-process limits while it does not: never unlimited.

    The outage is logged once when it starts and once when it ends; in between, one call per
    probe interval tries Redis again, so the service returns to shared limits by itself.
    Counts made in memory during the outage are not carried over to Redis.
    """

    def __init__(
        self,
        primary: RedisLimiter,
        fallback: Limiter,
        probe_interval: float = PROBE_INTERVAL_SECONDS,
        on_degraded: Callable[[bool], None] | None = None,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._probe_interval = probe_interval
        # Told when the outage starts (True) and ends (False): the metrics gauge.
        self._on_degraded = on_degraded
        self._down_since: float | None = None
        self._next_probe = 0.0

    async def hit(self, key: str, window: int, limit: int, now: float) -> WindowState:
        return await self._call(lambda limiter: limiter.hit(key, window, limit, now))

    async def hit_in_turn(
        self, counts: Sequence[Count], now: float
    ) -> tuple[list[WindowState | None], dict[str, float | None]]:
        return await self._call(lambda limiter: limiter.hit_in_turn(counts, now))

    async def discard(self, events: Mapping[str, str], windows: Sequence[str] = ()) -> None:
        await self._call(lambda limiter: limiter.discard(events, windows))

    async def block(self, key: str, until: float, now: float) -> bool:
        return await self._call(lambda limiter: limiter.block(key, until, now))

    async def blocked_until(self, keys: Sequence[str], now: float) -> list[float | None]:
        return await self._call(lambda limiter: limiter.blocked_until(keys, now))

    def status(self) -> LimiterStatus:
        return LimiterStatus.OK if self._down_since is None else LimiterStatus.DEGRADED

    async def close(self) -> None:
        await self._primary.close()
        await self._fallback.close()

    async def _call(self, operation: Callable[[Limiter], Awaitable[T]]) -> T:
        if self._down_since is not None and time.monotonic() < self._next_probe:
            return await operation(self._fallback)
        try:
            result = await operation(self._primary)
        except (RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.error(
                    "limiter.redis_unavailable",
                    error=type(exc).__name__,
                    fallback="in-process limits until Redis answers again",
                )
                if self._on_degraded is not None:
                    self._on_degraded(True)
            self._next_probe = time.monotonic() + self._probe_interval
            return await operation(self._fallback)
        if self._down_since is not None:
            log.warning(
                "limiter.redis_restored",
                outage_seconds=round(time.monotonic() - self._down_since, 1),
            )
            self._down_since = None
            if self._on_degraded is not None:
                self._on_degraded(False)
        return result
