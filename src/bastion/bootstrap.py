"""The composition root: the one place that decides which implementation serves each port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.accounts.service import AccountRules, AccountService
from bastion.adapters.mail import ConsoleTransport, SmtpTransport
from bastion.adapters.sql.database import create_engine
from bastion.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from bastion.core.clock import Clock, SystemClock
from bastion.core.secrets import Sealer, derive_key
from bastion.mail.messages import Links
from bastion.mail.ports import MailTransport
from bastion.mail.worker import OutboxWorker
from bastion.passwords.hashing import Argon2Parameters, PasswordHasher
from bastion.passwords.policy import PasswordPolicy
from bastion.passwords.service import PasswordService, ResetRules
from bastion.sessions.service import SessionRules, SessionService
from bastion.settings import Settings, resolve_secret_key
from bastion.tokens.service import TokenService


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    uow: SqlUnitOfWorkFactory
    clock: Clock
    hasher: PasswordHasher
    tokens: TokenService
    accounts: AccountService
    sessions: SessionService
    passwords: PasswordService
    outbox_worker: OutboxWorker

    async def start(self) -> None:
        await self.tokens.ensure_key()
        self.outbox_worker.start()

    async def stop(self) -> None:
        await self.outbox_worker.stop()
        self.hasher.close()
        await self.engine.dispose()


def build(settings: Settings, **overrides: Any) -> Services:
    """Wire every service from the settings. Tests pass overrides (``clock=``,
    ``mail_transport=``) instead of patching."""
    secret = resolve_secret_key(settings)
    clock: Clock = overrides.get("clock") or SystemClock()
    engine = create_engine(settings.database_url)
    uow = SqlUnitOfWorkFactory(engine, Sealer(derive_key(secret, "bastion/storage-encryption")))
    transport: MailTransport = overrides.get("mail_transport") or (
        SmtpTransport(settings.smtp_url, settings.smtp_timeout)
        if settings.smtp_url
        else ConsoleTransport()
    )
    outbox_worker = OutboxWorker(
        uow,
        transport,
        clock,
        sender=settings.mail_from,
        poll_seconds=settings.outbox_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    hasher = PasswordHasher(
        Argon2Parameters(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        ),
        threads=settings.hash_threads,
    )
    tokens = TokenService(
        uow,
        Sealer(derive_key(secret, "bastion/signing-keys")),
        clock,
        issuer=settings.token_issuer,
        audience=settings.audience,
        access_token_ttl=settings.access_token_ttl,
    )
    links = Links(settings.public_url)
    accounts = AccountService(
        uow,
        hasher,
        clock,
        AccountRules(
            policy=PasswordPolicy(
                min_length=settings.password_min_length,
                require_uppercase=settings.password_require_uppercase,
                require_lowercase=settings.password_require_lowercase,
                require_digit=settings.password_require_digit,
            ),
            verification_token_ttl=settings.verification_token_ttl,
            links=links,
        ),
        outbox_worker.wake,
    )
    sessions = SessionService(
        uow,
        hasher,
        tokens,
        clock,
        SessionRules(
            session_ttl=settings.session_ttl,
            remember_me_ttl=settings.remember_me_ttl,
            cache_seconds=settings.session_cache_seconds,
        ),
        outbox_worker.wake,
    )
    passwords = PasswordService(
        uow,
        hasher,
        accounts,
        sessions,
        clock,
        ResetRules(reset_token_ttl=settings.reset_token_ttl, links=links),
        outbox_worker.wake,
    )
    return Services(
        settings=settings,
        engine=engine,
        uow=uow,
        clock=clock,
        hasher=hasher,
        tokens=tokens,
        accounts=accounts,
        sessions=sessions,
        passwords=passwords,
        outbox_worker=outbox_worker,
    )
