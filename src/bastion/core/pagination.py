"""Keyset pagination: one rule for every list the API pages through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")
# The largest row id a cursor can name: a signed 64-bit integer, as PostgreSQL's BIGINT and
# SQLite's INTEGER store it. A larger number in a request must be refused before it reaches SQL.
MAX_ROW_ID = 2**63 - 1


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


def parse_row_id(text: str) -> int:
    """A row id written in plain ASCII digits, from 1 to ``MAX_ROW_ID``; else ValueError.

    ``int()`` alone would also take signs, spaces, underscores and non-ASCII digits.
    """
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_ROW_ID))):
        raise ValueError(text)
    value = int(text)
    if not 1 <= value <= MAX_ROW_ID:
        raise ValueError(text)
    return value
