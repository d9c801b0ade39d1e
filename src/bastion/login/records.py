"""What a refused or blocked log-in leaves behind: audit events, and mail to the account's owner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from bastion.accounts.model import User
from bastion.audit.model import EventType, LoginFailure, event
from bastion.core.clock import Clock
from bastion.core.context import Principal, RequestContext
from bastion.core.email_address import normalize_email
from bastion.login.model import Refusal
from bastion.mail import messages
from bastion.storage import UnitOfWorkFactory

log = structlog.get_logger("bastion.ratelimit")


class LoginRecords:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        links: messages.Links,
        mail_queued: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._links = links
        self._mail_queued = mail_queued

    async def refused(self, refusal: Refusal, context: RequestContext) -> None:
        async with self._uow() as uow:
            await uow.audit.record(
                event(
                    EventType.LOGIN_FAILED,
                    self._clock.now(),
                    context,
                    refusal.user_id,
                    reason=refusal.reason.value,
                )
            )
            await uow.commit()

    async def reauthenticated(
        self, principal: Principal, aal: str, context: RequestContext
    ) -> None:
        async with self._uow() as uow:
            await uow.audit.record(
                event(
                    EventType.REAUTHENTICATED,
                    self._clock.now(),
                    context,
                    principal.user_id,
                    session_id=str(principal.session_id),
                    aal=aal,
                )
            )
            await uow.commit()

    async def blocked(self, email: str, context: RequestContext) -> None:
        """An attempt that a lockout kept from trying its password."""
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

    async def lockout_engaged(
        self,
        kind: EventType,
        user: User | None,
        context: RequestContext,
        now: datetime,
        block_seconds: int,
        failures: int,
    ) -> None:
        """A lockout started: audited, and the account's owner (if the account exists) emailed."""
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
