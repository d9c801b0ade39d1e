"""Leases: which instance may run a background task now, as plain data and a rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime


def may_take(lease: Lease | None, holder: str, now: datetime) -> bool:
    """Whether ``holder`` may take the lease at ``now``: nobody holds it, its holder let it
    lapse, or ``holder`` holds it already (taking it again renews it)."""
    return lease is None or lease.holder == holder or lease.expires_at <= now
