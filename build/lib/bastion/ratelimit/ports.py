from __future__ import annotations

from typing import Protocol

from bastion.ratelimit.model import LimiterStatus, WindowState


class Limiter(Protocol):
    """Counters shared by every process that enforces the same limits.

    Each operation is atomic for its key. ``now`` is POSIX seconds from the caller's clock, so
    every backend follows the same (injectable) time.
    """

    async def hit(self, key: str, window: int, limit: int, now: float) -> WindowState:
        """Count one event in the sliding window of ``key`` unless ``limit`` events are already
        in it; ``allowed`` says whether it was counted."""
        ...

    async def remove(self, key: str, event: str) -> None:
        """Take back one counted event, such as an attempt that turned out not to fail."""
        ...

    async def clear(self, key: str) -> None:
        """Forget every event counted under ``key``."""
        ...

    async def block(self, key: str, until: float, now: float) -> bool:
        """Block ``key`` until ``until`` unless a block is already in force; True when this call
        engaged it, so whatever announces a block happens once per engagement."""
        ...

    async def blocked_until(self, key: str, now: float) -> float | None:
        """When the block on ``key`` ends, or None when it is not blocked."""
        ...

    def status(self) -> LimiterStatus: ...

    async def close(self) -> None: ...
