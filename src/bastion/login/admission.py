"""The admission step: the per-IP request limit, IP lockout and account protection.

Failures count per client IP (so nobody can lock a real user out by failing on their account
from elsewhere) and per account across all IPs (so an attack spread over many addresses still
stops); the account rule spares devices that signed in to it before. Unknown emails follow
exactly the same path as wrong passwords.
"""

from __future__ import annotations

from bastion.accounts.model import User
from bastion.audit.model import EventType
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import normalize_email
from bastion.login.devices import DeviceCookies
from bastion.login.model import Admission, Attempt, LockoutKeys
from bastion.login.records import LoginRecords
from bastion.ratelimit.model import (
    ACCOUNT_FAILURE_MEMORY,
    Count,
    LoginRules,
    Rule,
    Usage,
    WindowState,
    account_protection_reached,
    block_remaining,
    ip_lockout_reached,
    ip_subject,
    rate_count,
    seconds_until,
    usage,
)
from bastion.ratelimit.ports import Limiter
from bastion.storage import UnitOfWorkFactory


class LoginAdmission:
    def __init__(
        self,
        limiter: Limiter,
        uow: UnitOfWorkFactory,
        clock: Clock,
        rules: LoginRules,
        requests: Rule,
        devices: DeviceCookies,
        records: LoginRecords,
    ) -> None:
        self._limiter = limiter
        self._uow = uow
        self._clock = clock
        self._rules = rules
        self._requests = requests
        self._devices = devices
        self._records = records

    async def admit(
        self, email: str, context: RequestContext, device_cookie: str | None
    ) -> tuple[Usage, Admission]:
        """Count a log-in request against the per-IP request limit and take the attempt's
        slots, in one round trip. Over the request limit nothing else is counted or recorded
        (the caller refuses the request); an attempt a lockout refuses is recorded here."""
        keys = LockoutKeys.of(email, context.ip)
        now = self._clock.now().timestamp()
        request_count = rate_count(self._requests, ip_subject(context.ip))
        (request, *slots), ends = await self._limiter.hit_in_turn(
            [request_count, *self._slot_counts(keys)], now
        )
        if request is None:
            raise RuntimeError("the per-IP request count is never skipped")
        request_usage = usage(self._requests, request, now)
        if not request.allowed:
            return request_usage, Admission(email, keys)
        return request_usage, await self._admit(
            keys, email, context, device_cookie, now, slots, ends
        )

    async def admit_signed_in(self, email: str, context: RequestContext) -> Admission:
        """Take the slots of a signed-in user's attempt at their password (to confirm it
        before a sensitive change): the same lockouts as a log-in, and no device is spared,
        since the caller may hold a stolen token. The request was counted by the endpoint's
        own limit."""
        keys = LockoutKeys.of(email, context.ip)
        now = self._clock.now().timestamp()
        slots, ends = await self._limiter.hit_in_turn(self._slot_counts(keys), now)
        return await self._admit(keys, email, context, None, now, slots, ends)

    def _slot_counts(self, keys: LockoutKeys) -> list[Count]:
        """The attempt's slots: in its IP's failure window (skipped while the IP is blocked)
        and in its account's (skipped while either is blocked)."""
        rules = self._rules
        return [
            Count(keys.ip_failures, rules.failure_window, rules.max_failures, (keys.ip_block,)),
            Count(
                keys.account_failures,
                ACCOUNT_FAILURE_MEMORY,
                rules.account_max_failures,
                (keys.ip_block, keys.account_block),
            ),
        ]

    async def _admit(
        self,
        keys: LockoutKeys,
        email: str,
        context: RequestContext,
        device_cookie: str | None,
        now: float,
        slots: list[WindowState | None],
        ends: dict[str, float | None],
    ) -> Admission:
        """The attempt with its slots, or, when a lockout refuses it, the refusal recorded."""
        rules = self._rules
        ip_slot, account_slot = slots
        if ip_slot is None:  # not counted: the IP is blocked
            retry_after = block_remaining(ends[keys.ip_block], now)
        elif not ip_slot.allowed:
            retry_after = seconds_until((ip_slot.oldest or now) + rules.failure_window, now)
        else:
            account_slot, retry_after = await self._admit_account(
                keys, email, device_cookie, context, now, account_slot, ends[keys.account_block]
            )
            if retry_after is None:
                return Admission(email, keys, Attempt(ip_slot, account_slot))
        if ip_slot is not None and ip_slot.event is not None:
            await self._limiter.discard({keys.ip_failures: ip_slot.event})
        await self._records.blocked(email, context)
        return Admission(email, keys, retry_after=retry_after or rules.block_seconds)

    async def release(
        self, keys: LockoutKeys, attempt: Attempt, *, right_password: bool = False
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

    async def count_failure(
        self, keys: LockoutKeys, attempt: Attempt, email: str, context: RequestContext
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
            await self._records.lockout_engaged(
                EventType.IP_BLOCKED, None, context, now, rules.block_seconds, attempt.ip.count
            )
        if attempt.account is not None and account_protection_reached(attempt.account.count, rules):
            await self._engage_account_protection(keys, email, context, attempt.account.count)

    async def _admit_account(
        self,
        keys: LockoutKeys,
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
        owner = self._devices.owner(device_cookie)
        if owner is None:
            return False
        user = await self._user(email)
        return user is not None and owner == str(user.id)

    async def _engage_account_protection(
        self, keys: LockoutKeys, email: str, context: RequestContext, failures: int
    ) -> bool:
        """Block the account unless it is blocked already; the engagement is audited and the
        owner, if the account exists, emailed."""
        now = self._clock.now()
        moment = now.timestamp()
        seconds = self._rules.account_block_seconds
        if not await self._limiter.block(keys.account_block, moment + seconds, moment):
            return False
        user = await self._user(email)
        await self._records.lockout_engaged(
            EventType.ACCOUNT_PROTECTED, user, context, now, seconds, failures
        )
        return True

    async def _user(self, email: str) -> User | None:
        async with self._uow(read_only=True) as uow:
            return await uow.users.get_by_email(normalize_email(email))
