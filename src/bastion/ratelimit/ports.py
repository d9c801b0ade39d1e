from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    async def hit_reading_blocks(
        self, key: str, window: int, limit: int, now: float, blocks: Sequence[str]
    ) -> tuple[WindowState, list[float | None]]:
        """``hit``, then ``blocked_until(blocks)``, in one round trip: a block engaged before
        the event was counted is always seen."""
        ...

    async def discard(self, events: Mapping[str, str], windows: Sequence[str] = ()) -> None:
        """Take back counted events (key → event), such as attempts that turned out not to
        fail, and forget every event counted under each of ``windows``: one round trip."""
        ...

    async def block(self, key: str, until: float, now: float) -> bool:
        """Block ``key`` until ``until`` unless a block is already in force; True when this call
        engaged it, so whatever announces a block happens once per engagement."""
        ...

    async def blocked_until(self, keys: Sequence[str], now: float) -> list[float | None]:
        """When the block on each key ends (None where none is in force): one round trip."""
        ...

    def status(self) -> LimiterStatus: ...

    async def close(self) -> None: ...
