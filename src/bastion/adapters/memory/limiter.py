"""In-process limits: exact for one process, and the fallback when Redis is unreachable."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from bastion.ratelimit.model import Count, Hit, LimiterStatus, WindowState, admit, live_hits

# Expired keys are swept once the table holds this many, so memory stays bounded under attack.
SWEEP_THRESHOLD = 10_000


class MemoryLimiter:
    """Every operation runs without awaiting, so each is atomic on the event loop."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[list[Hit], int]] = {}
        self._blocks: dict[str, float] = {}

    async def hit(self, key: str, window: int, limit: int, now: float) -> WindowState:
        if len(self._windows) > SWEEP_THRESHOLD:
            self._sweep(now)
        hits, _ = self._windows.get(key, ([], window))
        event = f"{random.getrandbits(64):016x}"
        hits, allowed = admit(hits, (now, event), window, limit)
        self._windows[key] = (hits, window)
        return WindowState(
            allowed=allowed,
            count=len(hits),
            oldest=hits[0][0] if hits else None,
            event=event if allowed else None,
        )

    async def hit_in_turn(
        self, counts: Sequence[Count], now: float
    ) -> tuple[list[WindowState | None], dict[str, float | None]]:
        ends = {key: self._block_end(key, now) for count in counts for key in count.unless_blocked}
        states: list[WindowState | None] = []
        refused = False
        for count in counts:
            if refused or any(ends[key] is not None for key in count.unless_blocked):
                states.append(None)
                continue
            state = await self.hit(count.key, count.window, count.limit, now)
            states.append(state)
            refused = not state.allowed
        return states, ends

    async def discard(self, events: Mapping[str, str], windows: Sequence[str] = ()) -> None:
        for key, event in events.items():
            if key in self._windows:
                hits, window = self._windows[key]
                self._windows[key] = ([hit for hit in hits if hit[1] != event], window)
        for key in windows:
            self._windows.pop(key, None)

    async def block(self, key: str, until: float, now: float) -> bool:
        if self._block_end(key, now) is not None:
            return False
        if len(self._blocks) > SWEEP_THRESHOLD:
            self._sweep(now)
        self._blocks[key] = until
        return True

    async def blocked_until(self, keys: Sequence[str], now: float) -> list[float | None]:
        return [self._block_end(key, now) for key in keys]

    def status(self) -> LimiterStatus:
        return LimiterStatus.NOT_CONFIGURED

    async def close(self) -> None:
        self._windows.clear()
        self._blocks.clear()

    def _block_end(self, key: str, now: float) -> float | None:
        until = self._blocks.get(key)
        return until if until is not None and until > now else None

    def _sweep(self, now: float) -> None:
        self._windows = {
            key: (live, window)
            for key, (hits, window) in self._windows.items()
            if (live := live_hits(hits, now, window))
        }
        self._blocks = {key: until for key, until in self._blocks.items() if until > now}
