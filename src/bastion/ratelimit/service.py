"""Log-in protection (IP lockout, account protection with device cookies) and endpoint limits."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from bastion.accounts.model import User
from bastion.audit.model import EventType, LoginFailure, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import normalize_email
from bastion.core.secrets import Signer
from bastion.mail import messages
from bastion.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.ratelimit.model import (
    ACCOUNT_FAILURE_MEMORY,
    Count,
    LoginRules,
    Rule,
    Usage,
    WindowState,
    account_key,
    account_protection_reached,
    block_remaining,
    ip_lockout_reached,
    ip_subject,
    rate_count,
    seconds_until,
    usage,
)
from bastion.ratelimit.ports import Limiter
from bastion.sessions.errors import InvalidCredentials
from bastion.sessions.service import IssuedTokens, SessionService
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.ratelimit")


@dataclass(frozen=True, slots=True)
class EndpointRules:
    per_ip: Rule
    per_user: Rule
    register: Rule
    forgot_password: Rule
    verification_resend: Rule


class RateLimits:
    """Counts requests against the endpoint rules; the HTTP layer turns a refusal into a 429."""

    def __init__(self, limiter: Limiter, clock: Clock, rules: EndpointRules) -> None:
        self._limiter = limiter
        self._clock = clock
        self.rules = rules

    async def per_ip(self, rule: Rule, ip: str | None) -> Usage:
        return await self._count(rule, ip_subject(ip))

    async def per_email(self, rule: Rule, email: str) -> Usage:
        """Keyed by the address asked about, whether or not an account has it."""
        return await self._count(rule, account_key(normalize_email(email)))

    async def per_user(self, rule: Rule, user_id: uuid.UUID) -> Usage:
        return await self._count(rule, str(user_id))

    async def per_ip_in_turn(self, rules: Sequence[Rule], ip: str | None) -> list[Usage]:
        """Count the request against each rule in turn, in one round trip, up to the first that
        refuses it: the usage of each rule counted."""
        now = self._clock.now().timestamp()
        subject = ip_subject(ip)
        states, _ = await self._limiter.hit_in_turn([rate_count(r, subject) for r in rules], now)
        counted = zip(rules, states, strict=True)
        return [usage(rule, state, now) for rule, state in counted if state is not None]

    async def _count(self, rule: Rule, subject: str) -> Usage:
        now = self._clock.now().timestamp()
        count = rate_count(rule, subject)
        state = await self._limiter.hit(count.key, count.window, count.limit, now)
        return usage(rule, state, now)


@dataclass(frozen=True, slots=True)
class ProtectedLogin:
    tokens: IssuedTokens
    device_cookie: str


@dataclass(frozen=True, slots=True)
class _Keys:
    ip_failures: str
    ip_block: str
    account_failures: str
    account_block: str

    @classmethod
    def of(cls, email: str, ip: str | None) -> _Keys:
        ip_key = ip_subject(ip)
        account = account_key(normalize_email(email))
        return cls(
            ip_failures=f"login:ip-failures:{ip_key}",
            ip_block=f"login:ip-block:{ip_key}",
            account_failures=f"login:account-failures:{account}",
            account_block=f"login:account-block:{account}",
        )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The slots a log-in attempt holds while its password is checked.

    Taking the slot before the check, not counting the failure after it, is what stops a
    burst of parallel guesses from all passing the check at once.
    """

    ip: WindowState
    account: WindowState | None  # None for a known device, or the one probe after a block


@dataclass(frozen=True, slots=True)
class Admission:
    """Where a log-in attempt stands before its password is checked."""

    usage: Usage  # of the per-IP request limit, for the RateLimit-* headers
    email: str
    keys: _Keys
    attempt: _Attempt | None = None  # None when the attempt may not be made
    retry_after: int = 0  # when it may not be made for a lockout: seconds until it may


class LoginProtection:
    """Log-in behind the lockout rules.

    Failures count per client IP (so nobody can lock a real user out by failing on their
    account from elsewhere) and per account across all IPs (so an attack spread over many
    addresses still stops); the account rule spares devices that signed in to it before.
    Unknown emails follow exactly the same path as wrong passwords.
    """

    def __init__(
        self,
        sessions: SessionService,
        limiter: Limiter,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: LoginRules,
        requests: Rule,
        devices: Signer,
        links: messages.Links,
        mail_queued: Callable[[], None],
    ) -> None:
        self._sessions = sessions
        self._limiter = limiter
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._requests = requests
        self._devices = devices
        self._links = links
        self._mail_queued = mail_queued

    async def admit(
        self, email: str, context: RequestContext, device_cookie: str | None
    ) -> Admission:
        """Count the request against the per-IP limit and take the attempt's slots, in one
        round trip; an attempt that may not be made is recorded here and refused by ``login``."""
        keys = _Keys.of(email, context.ip)
        now = self._clock.now().timestamp()
        rules = self._rules
        (request, ip_slot, account_slot), ends = await self._limiter.hit_in_turn(
            [
                rate_count(self._requests, ip_subject(context.ip)),
                Count(keys.ip_failures, rules.failure_window, rules.max_failures, (keys.ip_block,)),
                Count(
                    keys.account_failures,
                    ACCOUNT_FAILURE_MEMORY,
                    rules.account_max_failures,
                    (keys.ip_block, keys.account_block),
                ),
            ],
            now,
        )
        if request is None:
            raise RuntimeError("the per-IP request count is never skipped")
        admission = Admission(usage(self._requests, request, now), email, keys)
        if not request.allowed:
            return admission
        if ip_slot is None:  # not counted: the IP is blocked
            retry_after = block_remaining(ends[keys.ip_block], now)
        elif not ip_slot.allowed:
            retry_after = seconds_until((ip_slot.oldest or now) + rules.failure_window, now)
        else:
            account_slot, retry_after = await self._admit_account(
                keys, email, device_cookie, context, now, account_slot, ends[keys.account_block]
            )
            if retry_after is None:
                return replace(admission, attempt=_Attempt(ip_slot, account_slot))
        if ip_slot is not None and ip_slot.event is not None:
            await self._limiter.discard({keys.ip_failures: ip_slot.event})
        await self._record_blocked(email, context)
        return replace(admission, retry_after=retry_after or rules.block_seconds)

    async def login(
        self, admission: Admission, password: str, remember_me: bool, context: RequestContext
    ) -> ProtectedLogin:
        """Check the password of an admitted attempt; its slots count as a failure or are
        given back."""
        if not admission.usage.allowed:
            raise RateLimited(admission.usage.reset_after)
        attempt, keys, email = admission.attempt, admission.keys, admission.email
        if attempt is None:
            raise TooManyAttempts(admission.retry_after)
        try:
            user = await self._sessions.check_password(email, password, context)
        except InvalidCredentials:
            await self._count_failure(keys, attempt, email, context)
            raise
        except Exception:
            await self._release(keys, attempt)
            raise
        await self._release(keys, attempt, right_password=True)
        tokens = await self._sessions.start_session(user, remember_me, context)
        return ProtectedLogin(tokens, self._devices.sign(f"{user.id}:{secrets.token_hex(8)}"))

    async def _admit_account(
        self,
        keys: _Keys,
        email: str,
        device_cookie: str | None,
        context: RequestContext,
        now: float,
        slot: WindowState | None,
        block_end: float | None,
    ) -> tuple[WindowState | None, int | None]:
        """The account slot and the seconds to wait (None when the attempt may go ahead)."""
        if slot is None:
            # Not counted: the account is blocked. Devices that signed in to it before pass.
            if await self._is_known_device(email, device_cookie):
                return None, None
            return None, block_remaining(block_end, now) or self._rules.account_block_seconds
        if slot.allowed or await self._is_known_device(email, device_cookie):
            return (slot if slot.allowed else None), None
        # Still at the limit after a block lifted: the one attempt that re-engages the block may
        # try its password; everyone else waits for the new block to end.
        if await self._engage_account_protection(keys, email, context, slot.count):
            return None, None
        [block_end] = await self._limiter.blocked_until([keys.account_block], now)
        return None, block_remaining(block_end, now) or self._rules.account_block_seconds

    async def _is_known_device(self, email: str, device_cookie: str | None) -> bool:
        """Whether the cookie was issued by us to a device that signed in to this account."""
        signed = self._devices.unsign(device_cookie) if device_cookie else None
        if signed is None:
            return False
        user = await self._user(email)
        return user is not None and signed.partition(":")[0] == str(user.id)

    async def _release(
        self, keys: _Keys, attempt: _Attempt, *, right_password: bool = False
    ) -> None:
        """Give back the slots of an attempt that did not fail. The right password also
        forgets the account's failures (its own slot among them)."""
        events = {} if attempt.ip.event is None else {keys.ip_failures: attempt.ip.event}
        if right_password:
            await self._limiter.discard(events, [keys.account_failures])
            return
        if attempt.account is not None and attempt.account.event is not None:
            events[keys.account_failures] = attempt.account.event
        await self._limiter.discard(events)

    async def _count_failure(
        self, keys: _Keys, attempt: _Attempt, email: str, context: RequestContext
    ) -> None:
        """The slots stay taken as failures; the one that fills a window engages its block."""
        rules = self._rules
        now = self._clock.now()
        moment = now.timestamp()
        if ip_lockout_reached(attempt.ip.count, rules) and await self._limiter.block(
            keys.ip_block, moment + rules.block_seconds, moment
        ):
            # The block replaces the count: once it lifts, the address starts afresh.
            await self._limiter.discard({}, [keys.ip_failures])
            await self._record_engagement(
                EventType.IP_BLOCKED, None, context, now, rules.block_seconds, attempt.ip.count
            )
        if attempt.account is not None and account_protection_reached(attempt.account.count, rules):
            await self._engage_account_protection(keys, email, context, attempt.account.count)

    async def _engage_account_protection(
        self, keys: _Keys, email: str, context: RequestContext, failures: int
    ) -> bool:
        """Block the account unless it is blocked already; the engagement is audited and the
        owner, if the account exists, emailed."""
        now = self._clock.now()
        moment = now.timestamp()
        seconds = self._rules.account_block_seconds
        if not await self._limiter.block(keys.account_block, moment + seconds, moment):
            return False
        user = await self._user(email)
        await self._record_engagement(
            EventType.ACCOUNT_PROTECTED, user, context, now, seconds, failures
        )
        return True

    async def _record_engagement(
        self,
        kind: EventType,
        user: User | None,
        context: RequestContext,
        now: datetime,
        block_seconds: int,
        failures: int,
    ) -> None:
        user_id = user.id if user else None
        async with self._uow() as uow:
            await uow.audit.record(
                event(kind, now, context, user_id, failures=failures, block_seconds=block_seconds)
            )
            if user is not None:
                await uow.outbox.add(
                    messages.account_protection_engaged(user.email, self._links), now
                )
            await uow.commit()
        if user is not None:
            self._mail_queued()
        log.warning(
            f"login.{kind.value}",
            ip=context.ip,
            user_id=str(user_id) if user_id else None,
            block_seconds=block_seconds,
        )

    async def _record_blocked(self, email: str, context: RequestContext) -> None:
        async with self._uow() as uow:
            user = await uow.users.get_by_email(normalize_email(email))
            await uow.audit.record(
                event(
                    EventType.LOGIN_FAILED,
                    self._clock.now(),
                    context,
                    user.id if user else None,
                    reason=LoginFailure.BLOCKED.value,
                )
            )
            await uow.commit()

    async def _user(self, email: str) -> User | None:
        async with self._uow(read_only=True) as uow:
            return await uow.users.get_by_email(normalize_email(email))
