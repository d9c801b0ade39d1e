from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bastion.ratelimit.model import Count, LimiterStatus, WindowState


class Limiter(Protocol):
    """Counters shared by every process that enforces the same limits.

    Each operation is atomic for its key. ``now`` is POSIX seconds from the caller's clock, so
    every backend follows the same (injectable) time.
    """

    async def hit(self, key: str, window: int, limit: int, now: float) -> WindowState:
        """Count one event in the sliding window of ``key`` unless ``limit`` events are already
        in it; ``allowed`` says whether it was counted."""
        ...

    async def hit_in_turn(
        self, counts: Sequence[Count], now: float
    ) -> tuple[list[WindowState | None], dict[str, float | None]]:
        """``hit`` each count's window in turn, atomically and in one round trip.

        A count whose blocks are in force is skipped, and the first window that is full ends
        the turn. Returns each window's state (None where nothing was counted) and when each
        block named ends (None where none is in force).
        """
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
