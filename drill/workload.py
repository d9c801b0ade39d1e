"""The drill's client: people signing up, confirming, logging in, refreshing, resetting and
logging out, and an admin deactivating some of them, against one Bastion base URL.

Each step is one request by one person (one at a time per person, as people do), chosen by
weight among what that person can do next. Steps arrive at a fixed rate whatever the latency
(an open loop, as in production), so a fault meets the traffic it would meet there.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from drill.ledger import Ledger, Record, Session, User, Verdict
from drill.sink import Mailbox

API = "/api/v1/auth"
ADMIN = "/api/v1/admin"
REFRESH_COOKIE = "bastion_refresh"
# Longer than anything Bastion may take before it answers (its database command timeout is 15 s)
# and than granian's 30 s for a stopping worker, so a request that reaches this is a hang.
CLIENT_TIMEOUT_SECONDS = 45.0
MAX_IN_FLIGHT = 400
# How many idle people a step looks at for one who can take it, before signing someone up.
CANDIDATES = 12
CLEAN_STATUSES = frozenset({429})


@dataclass(frozen=True)
class Mix:
    """Relative weights of the steps."""

    register: int = 10
    verify: int = 10
    login: int = 14
    me: int = 18
    verify_token: int = 18
    refresh: int = 14
    logout: int = 5
    forgot: int = 4
    reset: int = 4
    deactivate: int = 2
    remember_me_share: float = 0.6


class Outcome:
    """How a request ended, as the ledger sees it."""

    def __init__(self, response: httpx.Response | None, verdict: Verdict, detail: str) -> None:
        self.response = response
        self.verdict = verdict
        self.detail = detail

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


class Workload:
    def __init__(
        self,
        base_url: str,
        mailbox: Mailbox,
        ledger: Ledger,
        *,
        run_id: str,
        password: str,
        admin_token: str,
        mix: Mix | None = None,
        seed: int = 0,
    ) -> None:
        self.base_url = base_url
        self.mailbox = mailbox
        self.ledger = ledger
        self.run_id = run_id
        self.password = password
        self.admin_token = admin_token
        self.mix = mix or Mix()
        self.random = random.Random(seed)
        self.idle: list[User] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.saturated = 0  # steps not started because MAX_IN_FLIGHT were in flight
        self.nobody_free = 0  # steps skipped because every person was waiting or had nothing to do
        self._serial = 0
        self._client: httpx.AsyncClient | None = None
        steps: list[tuple[str, int, Callable[[User], bool], Callable[[User], Awaitable[None]]]] = [
            ("verify", self.mix.verify, self._can_verify, self.verify),
            ("login", self.mix.login, self._can_log_in, self.login),
            ("me", self.mix.me, self._has_session, self.me),
            ("verify_token", self.mix.verify_token, self._has_session, self.verify_token),
            ("refresh", self.mix.refresh, self._can_refresh, self.refresh),
            ("logout", self.mix.logout, self._has_session, self.logout),
            ("forgot", self.mix.forgot, self._can_forget, self.forgot),
            ("reset", self.mix.reset, self._can_reset, self.reset),
            ("deactivate", self.mix.deactivate, self._can_log_in, self.deactivate),
        ]
        self._steps = steps
        self._weights = [self.mix.register] + [weight for _, weight, _, _ in steps]

    async def __aenter__(self) -> Workload:
        # No cookie jar: each person's cookies are sent by hand, never another's.
        jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=CLIENT_TIMEOUT_SECONDS,
            cookies=httpx.Cookies(jar),
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=64),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    # --- driving -------------------------------------------------------------------------------

    async def open_loop(self, rate: float, stop: asyncio.Event) -> None:
        """Start a step every 1/rate seconds, whatever the answers, until `stop` is set."""
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    break
            next_at += interval
            if len(self.in_flight) >= MAX_IN_FLIGHT:
                self.saturated += 1
                continue
            task = asyncio.create_task(self.step())
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def closed_loop(self, concurrency: int, until: float) -> None:
        """Run `concurrency` steppers, each starting its next step when its last one ends."""

        async def stepper() -> None:
            while time.monotonic() < until:
                await self.step()

        await asyncio.gather(*(stepper() for _ in range(concurrency)))

    async def drain(self, timeout: float) -> None:
        """Let the steps in flight finish (each is bounded by the client timeout)."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout)

    async def step(self) -> None:
        index = self.random.choices(range(len(self._weights)), self._weights)[0]
        if index == 0:
            await self.register()
            return
        if not self.idle:
            # Everyone is waiting for an answer (a fault holds their requests). Signing people up
            # instead would turn the mix into a storm of password hashes that production would
            # not see; the step is skipped and counted.
            self.nobody_free += 1
            return
        _, _, eligible, run = self._steps[index - 1]
        user = self._take(eligible)
        if user is None:
            # Nobody at hand can take this step: someone takes one they can.
            user, run = self._anyone()
            if user is None or run is None:
                self.nobody_free += 1
                return
        try:
            await run(user)
        finally:
            user.busy = False
            if not user.in_doubt and not user.deactivated:
                self.idle.append(user)

    def _anyone(self) -> tuple[User | None, Callable[[User], Awaitable[None]] | None]:
        position = self.random.randrange(len(self.idle))
        user = self.idle[position]
        choices = [(weight, run) for _, weight, eligible, run in self._steps if eligible(user)]
        if not choices:
            return None, None
        self.idle[position] = self.idle[-1]
        self.idle.pop()
        user.busy = True
        weights, runs = zip(*choices, strict=True)
        return user, self.random.choices(runs, weights)[0]

    def _take(self, eligible: Callable[[User], bool]) -> User | None:
        for _ in range(min(CANDIDATES, len(self.idle))):
            position = self.random.randrange(len(self.idle))
            user = self.idle[position]
            if eligible(user):
                # Swap-remove: O(1), order does not matter.
                self.idle[position] = self.idle[-1]
                self.idle.pop()
                user.busy = True
                return user
        return None

    # --- eligibility --------------------------------------------------------------------------

    def _can_verify(self, user: User) -> bool:
        return not user.verified and bool(self.mailbox.of(user.email, "verify_email"))

    @staticmethod
    def _can_log_in(user: User) -> bool:
        return user.verified

    @staticmethod
    def _has_session(user: User) -> bool:
        return bool(user.live_sessions())

    @staticmethod
    def _can_refresh(user: User) -> bool:
        return any(s.refresh_token for s in user.live_sessions())

    @staticmethod
    def _can_forget(user: User) -> bool:
        return user.verified and not user.reset_wanted

    def _can_reset(self, user: User) -> bool:
        return user.reset_wanted and self._reset_token(user) is not None

    def _reset_token(self, user: User) -> str | None:
        for delivery in reversed(self.mailbox.of(user.email, "reset_password")):
            if delivery.token and delivery.token not in user.used_reset_tokens:
                return delivery.token
        return None

    # --- steps --------------------------------------------------------------------------------

    async def register(self) -> None:
        self._serial += 1
        user = User(
            email=f"drill-{self.run_id}-{self._serial}@drill.example.org", password=self.password
        )
        user.busy = True
        outcome = await self._call(
            "register",
            "POST",
            f"{API}/register",
            202,
            json={"email": user.email, "password": user.password},
        )
        if outcome.ok:
            user.registered = True
            user.promised["verify_email"] += 1
            self.ledger.users.append(user)
            user.busy = False
            self.idle.append(user)

    async def verify(self, user: User) -> None:
        token = self.mailbox.of(user.email, "verify_email")[-1].token
        outcome = await self._call("verify", "POST", f"{API}/verify-email/{token}", 200)
        if outcome.ok:
            user.verified = True
        else:
            user.in_doubt = True

    async def login(self, user: User) -> None:
        remember = self.random.random() < self.mix.remember_me_share
        body = {"email": user.email, "password": user.password, "remember_me": remember}
        outcome = await self._call("login", "POST", f"{API}/login", 200, json=body)
        if not outcome.ok or outcome.response is None:
            return  # a login nobody saw succeed leaves at most a session nobody uses
        data = outcome.response.json()
        refresh_token = _refresh_cookie(outcome.response) if remember else None
        if remember and refresh_token is None:
            self._violation("login", "remember_me login set no refresh cookie")
        user.sessions.append(
            Session(
                id=uuid.UUID(data["session_id"]),
                access_token=data["access_token"],
                refresh_token=refresh_token,
                issued_at=time.monotonic(),
            )
        )

    async def me(self, user: User) -> None:
        session = self.random.choice(user.live_sessions())
        outcome = await self._call("me", "GET", f"{API}/me", 200, token=session.access_token)
        if outcome.ok and outcome.response is not None:
            user.id = uuid.UUID(outcome.response.json()["id"])

    async def verify_token(self, user: User) -> None:
        session = self.random.choice(user.live_sessions())
        await self._call(
            "verify_token", "GET", f"{API}/verify-token", 200, token=session.access_token
        )

    async def refresh(self, user: User) -> None:
        session = self.random.choice([s for s in user.live_sessions() if s.refresh_token])
        assert session.refresh_token is not None
        presented = session.refresh_token
        outcome = await self._present(presented)
        if outcome.verdict is Verdict.CLEAN:
            # A clean refusal changed nothing: trying again with the same cookie, as a browser
            # would, must work (REFRESH_TOKEN_REUSED here would be a false alarm).
            await asyncio.sleep(0.5)
            outcome = await self._present(presented, after_refusal=True)
        if outcome.ok and outcome.response is not None:
            fresh = _refresh_cookie(outcome.response)
            if fresh is None:
                self._violation("refresh", "refresh answered 200 without a new cookie")
                session.in_doubt = True
                return
            session.spent.append(presented)
            session.refresh_token = fresh
            session.access_token = outcome.response.json()["access_token"]
        elif outcome.verdict is not Verdict.CLEAN:
            session.in_doubt = True

    async def _present(self, token: str, *, after_refusal: bool = False) -> Outcome:
        op = "refresh (retry)" if after_refusal else "refresh"
        return await self._call(
            op, "POST", f"{API}/refresh", 200, headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
        )

    async def logout(self, user: User) -> None:
        session = self.random.choice(user.live_sessions())
        outcome = await self._call(
            "logout", "POST", f"{API}/logout", 204, token=session.access_token
        )
        if outcome.ok:
            session.revoked = True
        else:
            session.in_doubt = True

    async def forgot(self, user: User) -> None:
        outcome = await self._call(
            "forgot", "POST", f"{API}/forgot-password", 202, json={"email": user.email}
        )
        if outcome.ok:
            user.promised["reset_password"] += 1
            user.reset_wanted = True
        elif outcome.verdict is not Verdict.CLEAN:
            user.in_doubt = True

    async def reset(self, user: User) -> None:
        token = self._reset_token(user)
        assert token is not None
        new_password = f"{self.password}-{uuid.uuid4().hex[:8]}"
        body = {"token": token, "new_password": new_password}
        outcome = await self._call("reset", "POST", f"{API}/reset-password", 200, json=body)
        if outcome.ok:
            user.used_reset_tokens.add(token)
            user.reset_wanted = False
            user.password = new_password
            user.resets.append((new_password, time.monotonic()))
            user.promised["password_changed"] += 1
            for session in user.sessions:
                session.revoked = True
        elif outcome.verdict is not Verdict.CLEAN:
            user.in_doubt = True

    async def deactivate(self, user: User) -> None:
        found = await self._call(
            "admin_search",
            "GET",
            f"{ADMIN}/users",
            200,
            token=self.admin_token,
            params={"email": user.email},
        )
        if not found.ok or found.response is None:
            return
        items = [item for item in found.response.json()["items"] if item["email"] == user.email]
        if len(items) != 1:
            self._violation("admin_search", f"search for a registered email found {len(items)}")
            return
        user.id = uuid.UUID(items[0]["id"])
        outcome = await self._call(
            "deactivate",
            "PATCH",
            f"{ADMIN}/users/{user.id}",
            200,
            token=self.admin_token,
            json={"is_active": False},
        )
        if outcome.ok:
            user.deactivated = True
            user.deactivated_at = time.monotonic()
            for session in user.sessions:
                session.revoked = True
        elif outcome.verdict is not Verdict.CLEAN:
            user.in_doubt = True

    # --- requests -----------------------------------------------------------------------------

    async def _call(
        self,
        op: str,
        method: str,
        path: str,
        expected: int,
        *,
        token: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Outcome:
        assert self._client is not None
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            response = await self._client.request(
                method, path, json=json, params=params, headers=sent
            )
        except httpx.TimeoutException as exc:
            return self._log(
                op,
                started,
                None,
                Verdict.VIOLATION,
                f"no answer in {CLIENT_TIMEOUT_SECONDS:.0f} s ({type(exc).__name__})",
            )
        except httpx.TransportError as exc:
            return self._log(op, started, None, Verdict.CONNECTION, type(exc).__name__)
        status = response.status_code
        code = _problem_code(response)
        if status == expected:
            verdict, detail = Verdict.OK, ""
        elif status == 503:
            clean = "retry-after" in response.headers and code == "SERVICE_UNAVAILABLE"
            verdict = Verdict.CLEAN if clean else Verdict.VIOLATION
            detail = (
                code if clean else f"503 {code or 'without a problem code'} without Retry-After"
            )
        elif status in CLEAN_STATUSES:
            verdict, detail = Verdict.CLEAN, code
        elif status >= 500:
            verdict, detail = Verdict.VIOLATION, f"{status} {code}"
        elif status in (401, 403):
            verdict, detail = Verdict.VIOLATION, f"wrong {status} {code}"
        else:
            verdict, detail = Verdict.VIOLATION, f"unexpected {status} {code}"
        return self._log(op, started, response, verdict, detail)

    def _log(
        self,
        op: str,
        started: float,
        response: httpx.Response | None,
        verdict: Verdict,
        detail: str,
    ) -> Outcome:
        self.ledger.record(
            Record(
                op=op,
                started=started,
                seconds=time.monotonic() - started,
                status=response.status_code if response is not None else None,
                verdict=verdict,
                detail=detail,
            )
        )
        return Outcome(response, verdict, detail)

    def _violation(self, op: str, detail: str) -> None:
        now = time.monotonic()
        self.ledger.record(Record(op, now, 0.0, None, Verdict.VIOLATION, detail))


def _problem_code(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    try:
        code = response.json().get("code", "")
    except ValueError:
        return "unreadable problem"
    return str(code)


def _refresh_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{REFRESH_COOKIE}="):
            value = header.split(";", 1)[0].removeprefix(f"{REFRESH_COOKIE}=")
            return value or None
    return None
