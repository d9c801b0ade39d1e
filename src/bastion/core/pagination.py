"""Keyset pagination: one rule for every list the API pages through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Page(Generic[T, C]):
    items: list[T]
    next_cursor: C | None


def page_of(items: list[T], limit: int, cursor_of: Callable[[T], C]) -> Page[T, C]:
    """A page from up to ``limit + 1`` rows: the extra row only tells that more exist."""
    if len(items) <= limit:
        return Page(items=items, next_cursor=None)
    kept = items[:limit]
    return Page(items=kept, next_cursor=cursor_of(kept[-1]))
