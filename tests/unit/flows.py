"""The wired services over in-memory storage and limits, with a frozen clock: what the fast
service tests stand on. The fakes are held to the real adapters by ``tests/contracts``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from bastion.accounts.model import Role, User
from bastion.adapters.memory.limiter import MemoryLimiter
from bastion.audit.model import AuditEvent
from bastion.bootstrap import Services, build
from bastion.core.clock import FrozenClock
from bastion.core.context import RequestContext
from bastion.login.service import LoggedIn
from tests.fakes import FakeUnitOfWorkFactory
from tests.support import STRONG_PASSWORD, make_settings, random_email

# Never connected to: the storage is the in-memory fake, and mail stays in its outbox.
UNUSED_DATABASE = "sqlite+aiosqlite:///:memory:"
UNUSED_SMTP = "smtp://127.0.0.1:9"


@dataclass
class World:
    services: Services
    store: FakeUnitOfWorkFactory
    clock: FrozenClock

    async def user(self, *, verified: bool = True, active: bool = True, **changes: Any) -> User:
        """A new account with the strong test password (changed as asked)."""
        if verified:
            user = await self.services.accounts.create_user(
                random_email("flow"), STRONG_PASSWORD, Role.USER
            )
        else:
            email = random_email("flow")
            await self.services.accounts.register(email, STRONG_PASSWORD, RequestContext())
            async with self.store(read_only=True) as uow:
                registered = await uow.users.get_by_email(email)
            assert registered is not None
            user = registered
        if not active or changes:
            user = replace(user, is_active=active, **changes)
            async with self.store() as uow:
                await uow.users.update(user)
                await uow.commit()
        return user

    async def log_in(
        self,
        email: str,
        password: str = STRONG_PASSWORD,
        *,
        ip: str = "198.51.100.1",
        device: str | None = None,
        remember_me: bool = False,
    ) -> LoggedIn:
        """One log-in attempt from ``ip``, as the route makes it."""
        context = RequestContext(ip=ip, user_agent="unit tests")
        usage, admission = await self.services.login.admit(email, context, device)
        assert usage.allowed, "over the per-IP request limit"
        return await self.services.login.log_in(admission, password, remember_me, context)

    def events(self, kind: str, user_id: object = None) -> list[AuditEvent]:
        """Committed audit events of ``kind`` (about ``user_id`` when given), oldest first."""
        return [
            e
            for _, e in sorted(self.store.tables.audit.items())
            if e.type.value == kind and (user_id is None or e.user_id == user_id)
        ]

    def mail_to(self, recipient: str) -> list[str]:
        """The kinds of the messages queued for ``recipient``, oldest first."""
        rows = sorted(self.store.tables.outbox.items())
        return [row.message.kind for _, row in rows if row.message.recipient == recipient]


@asynccontextmanager
async def world(**settings: Any) -> AsyncIterator[World]:
    store, clock = FakeUnitOfWorkFactory(), FrozenClock()
    services = build(
        make_settings(UNUSED_DATABASE, UNUSED_SMTP, **settings),
        uow=store,
        clock=clock,
        limiter=MemoryLimiter(),
    )
    try:
        yield World(services, store, clock)
    finally:
        await services.stop()
