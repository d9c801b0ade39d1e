from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bastion.events.model import Position, StreamEvent


class EventLog(Protocol):
    """The stream_events table, within a unit of work."""

    async def publish(self, *events: StreamEvent) -> None:
        """Record ``events``: they become visible when the unit of work commits."""
        ...

    async def after(self, cursor: int, limit: int) -> list[StreamEvent]:
        """Up to ``limit`` events with ids above ``cursor``, in id order."""
        ...

    async def newest_id(self) -> int:
        """The newest event's id, 0 if there is none."""
        ...

    async def position(self, event_id: int) -> Position: ...


class Wakeups(Protocol):
    """Tells this process soon after any instance commits events (LISTEN/NOTIFY)."""

    async def start(self, on_events: Callable[[], None]) -> bool:
        """Start listening; False if that cannot be done here (the caller then polls)."""
        ...

    async def stop(self) -> None: ...
