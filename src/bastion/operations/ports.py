from __future__ import annotations

from typing import Protocol


class MetricsExporter(Protocol):
    """The metrics as the operator scrapes them, with the gauges read at scrape time."""

    def set_outbox_backlog(self, backlog: int) -> None: ...

    def set_limiter_degraded(self, degraded: bool) -> None: ...

    def exposition(self) -> bytes: ...
