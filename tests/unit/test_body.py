"""Reading a request body whole: within its limit, drained when over it, and on time."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive

from bastion.http.body import (
    DRAIN_LIMIT_BYTES,
    BodyIncomplete,
    BodyTimedOut,
    BodyTooLarge,
    declared_length,
    read_body,
)

KIB = 1024


def arriving(
    *chunks: bytes, complete: bool = True, then: Message | None = None
) -> tuple[Receive, list[int]]:
    """A receive channel delivering ``chunks`` (the last one ending the body when ``complete``),
    then ``then`` or nothing ever; the list counts the bytes handed out."""
    handed: list[int] = []

    async def receive() -> Message:
        index = len(handed)
        if index < len(chunks):
            handed.append(len(chunks[index]))
            more = index + 1 < len(chunks) or not complete
            return {"type": "http.request", "body": chunks[index], "more_body": more}
        if then is not None:
            return then
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    return receive, handed


async def test_a_body_within_the_limit_is_read_whole() -> None:
    receive, _ = arriving(b"ab", b"", b"cd")
    assert await read_body(receive, limit=4, timeout=1) == b"abcd"


async def test_a_body_over_the_limit_is_drained_then_refused() -> None:
    receive, handed = arriving(*[b"x" * KIB] * 70)
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=64 * KIB, timeout=1)
    assert sum(handed) == 70 * KIB


async def test_draining_stops_at_its_bound() -> None:
    receive, handed = arriving(*[b"x" * (64 * KIB)] * 40)
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=64 * KIB, timeout=1)
    assert DRAIN_LIMIT_BYTES < sum(handed) <= DRAIN_LIMIT_BYTES + 64 * KIB


async def test_a_body_declared_beyond_the_drain_bound_is_refused_unread() -> None:
    receive, handed = arriving(b"x")
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=64 * KIB, timeout=1, declared=DRAIN_LIMIT_BYTES + 1)
    assert handed == []


async def test_a_body_that_stalls_times_out() -> None:
    receive, _ = arriving(b'{"email"', complete=False)
    with pytest.raises(BodyTimedOut):
        await read_body(receive, limit=64 * KIB, timeout=0.05)


async def test_a_client_that_leaves_mid_body_is_an_incomplete_body() -> None:
    receive, _ = arriving(b'{"email"', complete=False, then={"type": "http.disconnect"})
    with pytest.raises(BodyIncomplete):
        await read_body(receive, limit=64 * KIB, timeout=1)


@pytest.mark.parametrize(
    ("header", "length"),
    [(None, None), (b"0", 0), (b"65536", 65536), (b"9" * 5000, 10**18), (b"007", 7)],
)
def test_a_content_length_of_plain_digits_is_read_whatever_its_size(
    header: bytes | None, length: int | None
) -> None:
    headers = {} if header is None else {b"content-length": header}
    assert declared_length(headers) == length


@pytest.mark.parametrize("header", [b"", b"-1", b"1e3", b" 12", b"0x10", "١٢".encode()])
def test_any_other_content_length_is_invalid(header: bytes) -> None:
    with pytest.raises(ValueError):
        declared_length({b"content-length": header})
