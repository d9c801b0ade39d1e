"""Reading a request body whole before the app sees it: bounded in size and in time."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive

# An oversized body is still read (and dropped) up to this much before the 413 is sent. A
# server that answers while unread bytes wait in its socket and then closes it sends a TCP
# reset, and the reset can destroy the answer before the client reads it.
DRAIN_LIMIT_BYTES = 1024 * 1024
MAX_LENGTH_DIGITS = 18


class BodyTooLarge(Exception):
    """The body is larger than the limit."""


class BodyTimedOut(Exception):
    """The body did not arrive in time: a stalled or deliberately slow client."""


class BodyIncomplete(Exception):
    """The client went away before sending the whole body."""


def declared_length(headers: dict[bytes, bytes]) -> int | None:
    """The Content-Length, None without one; ValueError unless it is plain ASCII digits."""
    raw = headers.get(b"content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValueError(raw)
    # Anything longer is far past every limit, and int() refuses over 4300 digits.
    return int(raw[:MAX_LENGTH_DIGITS]) if len(raw) <= MAX_LENGTH_DIGITS else 10**MAX_LENGTH_DIGITS


async def read_body(
    receive: Receive, *, limit: int, timeout: float, declared: int | None = None
) -> bytes:
    """The whole body, at most ``limit`` bytes, received within ``timeout`` seconds in all.

    A body over the limit is drained up to ``DRAIN_LIMIT_BYTES`` (none of it when the declared
    length is beyond that) before BodyTooLarge is raised, so that the 413 reaches the client.
    """
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise BodyIncomplete()
                chunk = message.get("body", b"")
                received += len(chunk)
                if received <= limit:
                    chunks.append(chunk)
                if not message.get("more_body", False) or received > DRAIN_LIMIT_BYTES:
                    break
    except TimeoutError:
        raise BodyTimedOut() from None
    if received > limit:
        raise BodyTooLarge()
    return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` first, then whatever the connection says next."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
