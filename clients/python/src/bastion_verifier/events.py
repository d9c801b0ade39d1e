"""Revocation in a second: Bastion's event stream, and the refusals it tells us to make."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from bastion_verifier.check import Answer, TokenCheck
from bastion_verifier.claims import Claims
from bastion_verifier.clients import HttpClients
from bastion_verifier.errors import TokenRevoked
from bastion_verifier.sse import EventStreamParser, ServerSentEvent

log = logging.getLogger("bastion_verifier")

EVENTS_PATH = "/api/v1/events"
# After these, every token the user was issued before the event is void.
USER_CUTOFF_EVENTS = frozenset(
    {"user.disabled", "user.deleted", "user.role_changed", "password.reset", "password.changed"}
)
PRUNE_EVERY_SECONDS = 60.0
# Connections that carry nothing for this long may have died silently (NATs and proxies drop
# idle ones without a word): reconnecting with Last-Event-ID costs nothing and loses nothing.
STREAM_IDLE_SECONDS = 60.0
# The first reconnection comes this soon (or as the stream's ``retry:`` says, within bounds),
# then each failed attempt doubles the wait.
RECONNECT_SECONDS = 0.25
MIN_RECONNECT_SECONDS = 0.1
MAX_RECONNECT_SECONDS = 10.0
# Bastion's verify-token may answer from its session cache (up to a second old): its word
# counts as newer than the stream's start only when asked at least this long after it.
CONFIRMATION_DELAY_SECONDS = 1.0


class RevocationState:
    """What the events said to refuse, each kept until the tokens it voids have expired."""

    def __init__(self, token_lifetime: float) -> None:
        self._lifetime = token_lifetime
        # When each was revoked, by session id, user id and key id.
        self._sessions: dict[str, float] = {}
        self._users: dict[str, float] = {}
        self._keys: dict[str, float] = {}
        # Set after the stream lost our position: nothing issued earlier can be vouched for.
        self.refuse_issued_before = -math.inf
        self._pruned_at = -math.inf

    @property
    def token_lifetime(self) -> float:
        return self._lifetime

    def observe(self, claims: Claims) -> None:
        """Remember revocations at least as long as the longest-lived token we have seen."""
        self._lifetime = max(self._lifetime, claims.lifetime())

    def apply(self, event_type: str, data: Mapping[str, Any], now: float) -> None:
        occurred_at = _occurred_at(data, now)
        if event_type == "session.revoked":
            target, revoked = data.get("sid"), self._sessions
        elif event_type in USER_CUTOFF_EVENTS:
            target, revoked = data.get("user_id"), self._users
        elif event_type == "signing_key.revoked":
            target, revoked = data.get("kid"), self._keys
        else:
            return
        if not isinstance(target, str):
            log.warning("Ignoring a %s event without its subject", event_type)
            return
        revoked[target] = max(revoked.get(target, -math.inf), occurred_at)
        self._prune(now)

    def refusal(self, claims: Claims) -> str | None:
        """Why ``claims`` must be refused, or None."""
        if claims.sid in self._sessions:
            return "The session has ended."
        if claims.kid in self._keys:
            return "The key that signed the access token has been revoked."
        issued_at = claims.iat.timestamp()
        if issued_at < self._users.get(claims.sub, -math.inf):
            return "The access token was issued before a change to the account."
        if issued_at < self.refuse_issued_before:
            return "The access token cannot be checked for revocation; please refresh it."
        return None

    def _prune(self, now: float) -> None:
        if now < self._pruned_at + PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        forget_before = now - self._lifetime
        for revoked in (self._sessions, self._users, self._keys):
            for target in [t for t, at in revoked.items() if at < forget_before]:
                del revoked[target]


def _occurred_at(data: Mapping[str, Any], now: float) -> float:
    """When the event happened; if it does not say, now (later voids more, never less)."""
    value = data.get("occurred_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            occurred_at = datetime.fromisoformat(value)
        except ValueError:
            return now
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        return occurred_at.timestamp()
    return now


class StreamListener(Protocol):
    def stream_opened(self, covers_from: float, resumed: bool) -> None:
        """The stream is open: it reports every event from Bastion's time ``covers_from`` on,
        and also, if ``resumed``, every event since the last one seen before."""

    def stream_failed(self) -> None: ...

    def position_lost(self) -> None: ...

    def event(self, event: ServerSentEvent) -> None: ...


class _Outcome(enum.Enum):
    ENDED = enum.auto()  # it was open, then closed: reconnect soon, from where we were
    FAILED = enum.auto()  # it never opened: back off
    GONE = enum.auto()  # our position is older than Bastion keeps: reconnect at once, from now


class StreamRefused(Exception):
    """Bastion answered the stream request with something other than an event stream."""


class EventStream:
    """One connection to Bastion's event stream, kept open; reconnects with Last-Event-ID."""

    def __init__(
        self,
        url: str,
        service_key: str,
        listener: StreamListener,
        clock: Callable[[], float],
        timeout: float,
        headers: dict[str, str],
    ) -> None:
        self._url = url
        self._service_key = service_key
        self._listener = listener
        self._clock = clock
        self._timeout = timeout
        self._headers = headers
        self._reconnect_seconds = RECONNECT_SECONDS
        self.last_event_id: str | None = None

    async def run(self) -> None:
        delay = self._reconnect_seconds
        timeout = httpx.Timeout(self._timeout, read=STREAM_IDLE_SECONDS)
        async with httpx.AsyncClient(timeout=timeout, headers=self._headers) as client:
            while True:
                outcome = await self._connect_once(client)
                if outcome is _Outcome.GONE:
                    continue
                if outcome is _Outcome.ENDED:
                    delay = self._reconnect_seconds
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 (jitter)
                delay = min(delay * 2, MAX_RECONNECT_SECONDS)

    async def _connect_once(self, client: httpx.AsyncClient) -> _Outcome:
        opened = False
        headers = self._request_headers()
        try:
            async with client.stream("GET", self._url, headers=headers) as response:
                if response.status_code == httpx.codes.GONE and "Last-Event-ID" in headers:
                    self.last_event_id = None
                    self._listener.position_lost()
                    return _Outcome.GONE
                _check_is_event_stream(response)
                opened = True
                resumed = "Last-Event-ID" in headers
                self._listener.stream_opened(self._covers_from(response), resumed)
                await self._read(response)
            log.info("Bastion's event stream ended; reconnecting")
        except StreamRefused as exc:
            log.error("Bastion refused the event stream: %s", exc)
        except httpx.HTTPError as exc:
            # A stream that was open and went quiet or broke is routine: it resumes.
            level = logging.INFO if opened else logging.WARNING
            log.log(level, "Bastion's event stream is unreachable or broke off: %r", exc)
        except Exception:
            # Whatever happens, keep listening: a dead listener would silently stop revocation.
            log.exception("Unexpected failure reading Bastion's event stream")
        if not opened:
            self._listener.stream_failed()
        return _Outcome.ENDED if opened else _Outcome.FAILED

    def _request_headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._service_key}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    async def _read(self, response: httpx.Response) -> None:
        parser = EventStreamParser()
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                self._listener.event(event)
            if parser.last_event_id is not None:
                self.last_event_id = parser.last_event_id
            if parser.retry_ms is not None:
                self._reconnect_seconds = min(
                    max(parser.retry_ms / 1000, MIN_RECONNECT_SECONDS), MAX_RECONNECT_SECONDS
                )

    def _covers_from(self, response: httpx.Response) -> float:
        """Bastion's time from which this connection reports every event: tokens issued since
        then need nothing but the stream.

        Bastion's Date header is its clock, to the second, when it opened the stream; a token
        issued during that second may have come just before, so coverage starts at the next one.
        """
        date = response.headers.get("date")
        if date is not None:
            with contextlib.suppress(TypeError, ValueError):
                return math.floor(email.utils.parsedate_to_datetime(date).timestamp()) + 1
        return math.floor(self._clock()) + 1


def _check_is_event_stream(response: httpx.Response) -> None:
    if response.status_code != httpx.codes.OK:
        raise StreamRefused(f"status {response.status_code}")
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        raise StreamRefused(f"content type {content_type!r}")


class EventRevocation:
    """Refuses tokens that Bastion's events revoked, without a request to Bastion per token.

    A token issued after the stream opened is vouched for by the stream alone. An older token
    (issued before this process started listening) is confirmed once per session with
    verify-token; later revocations of that session come through the stream.
    """

    def __init__(
        self,
        bastion_url: str,
        service_key: str,
        checker: TokenCheck,
        clock: Callable[[], float],
        timeout: float,
        token_lifetime: float,
        http: HttpClients,
    ) -> None:
        self._checker = checker
        self._clock = clock
        self._timeout = timeout
        self._state = RevocationState(token_lifetime)
        self._stream = EventStream(
            bastion_url + EVENTS_PATH, service_key, self, clock, timeout, http.headers()
        )
        self._covered_since: float | None = None  # Bastion's clock
        self._coverage_began_at = math.inf  # ours
        self._confirmed_sessions: set[str] = set()
        self._resyncing = False
        self._task: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()

    async def start(self) -> None:
        """Open the stream, waiting (up to the timeout) for the first attempt's outcome."""
        if self._task is not None:
            return
        self._first_attempt = asyncio.Event()
        self._task = asyncio.create_task(self._stream.run(), name="bastion-verifier-events")
        try:
            await asyncio.wait_for(self._first_attempt.wait(), self._timeout)
        except TimeoutError:
            log.warning("Bastion's event stream is not open yet; still trying in the background")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check(self, token: str, claims: Claims) -> None:
        if self._refuse_or_vouch(claims):
            return
        self._confirm(claims, self._checker.check(token))

    async def check_async(self, token: str, claims: Claims) -> None:
        if self._refuse_or_vouch(claims):
            return
        self._confirm(claims, await self._checker.check_async(token))

    def _refuse_or_vouch(self, claims: Claims) -> bool:
        """Raise if the events revoked ``claims``; True if the stream vouches for them."""
        if self._task is None:
            raise RuntimeError(
                'revocation="events" listens to Bastion only once started: await '
                "verifier.start(), use `async with verifier:`, or call verifier.install(app)"
            )
        self._state.observe(claims)
        reason = self._state.refusal(claims)
        if reason is not None:
            raise TokenRevoked(reason)
        covered_since = self._covered_since
        return covered_since is not None and (
            claims.iat.timestamp() >= covered_since or claims.sid in self._confirmed_sessions
        )

    def _confirm(self, claims: Claims, answer: Answer) -> None:
        if answer.asked_at >= self._coverage_began_at + CONFIRMATION_DELAY_SECONDS:
            self._confirmed_sessions.add(claims.sid)

    # What the stream reports.

    def stream_opened(self, covers_from: float, resumed: bool) -> None:
        if self._resyncing:
            self._resyncing = False
            self._state.refuse_issued_before = covers_from
            log.warning(
                "Reconnected to Bastion's event stream from now: tokens issued before the "
                "reconnection stay refused until they expire"
            )
            self._begin_coverage(covers_from)
        elif not resumed:
            # The first connection, or a reconnection before any event gave us a position to
            # resume from: what happened before it is unknown, as when the process started.
            self._begin_coverage(covers_from)
        self._first_attempt.set()

    def _begin_coverage(self, covers_from: float) -> None:
        self._covered_since = covers_from
        self._coverage_began_at = self._clock()
        self._confirmed_sessions.clear()

    def stream_failed(self) -> None:
        self._first_attempt.set()

    def position_lost(self) -> None:
        log.warning(
            "Bastion no longer holds this verifier's place in its event stream (410): some "
            "revocations may have been missed, so every token issued before the reconnection "
            "is refused until it expires"
        )
        self._resyncing = True
        self._state.refuse_issued_before = math.inf

    def event(self, event: ServerSentEvent) -> None:
        try:
            data = json.loads(event.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("Ignoring an event whose data is not a JSON object (id %r)", event.id)
            return
        event_type = data.get("type") if event.type == "message" else event.type
        if isinstance(event_type, str):
            now = self._clock()
            self._state.apply(event_type, data, now)
            if self._covered_since is not None and now > (
                self._covered_since + self._state.token_lifetime
            ):
                # Every token older than the stream has expired: none needs confirming now.
                self._confirmed_sessions.clear()
