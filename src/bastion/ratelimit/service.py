"""Endpoint limits: requests counted against the rules, per client IP, user or email address."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.core.clock import Clock
from bastion.core.email_address import normalize_email
from bastion.ratelimit.model import Rule, Usage, account_key, ip_subject, rate_count, usage
from bastion.ratelimit.ports import Limiter


@dataclass(frozen=True, slots=True)
class EndpointRules:
    per_ip: Rule
    per_user: Rule
    register: Rule
    forgot_password: Rule
    verification_resend: Rule
    export: Rule


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
