"""The composition root: the one place that decides which implementation serves each port."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.accounts.service import AccountRules, AccountService
from bastion.adapters.mail import ConsoleTransport, SmtpTransport
from bastion.adapters.memory.limiter import MemoryLimiter
from bastion.adapters.metrics import Metrics
from bastion.adapters.passwords import Argon2Parameters, Argon2PasswordHasher
from bastion.adapters.redis.limiter import FallbackLimiter, RedisLimiter
from bastion.adapters.sql.database import create_engine
from bastion.adapters.sql.events import PostgresWakeups
from bastion.adapters.sql.unit_of_work import SqlUnitOfWorkFactory
from bastion.adapters.webhooks import HttpSender, SystemResolver
from bastion.admin.service import AdminRules, AdminService
from bastion.audit.service import AuditService
from bastion.background.periodic import OneAtATime, PeriodicTask
from bastion.core.brand import LOGO_TYPES, Brand
from bastion.core.clock import Clock, SystemClock
from bastion.core.errors import StorageUnavailable
from bastion.core.secrets import Sealer, Signer, derive_key
from bastion.credentials.service import ServiceKeyService
from bastion.events.service import EventFeed
from bastion.login.admission import LoginAdmission
from bastion.login.devices import DeviceCookies
from bastion.login.password import PasswordCheck
from bastion.login.records import LoginRecords
from bastion.login.service import LoginFlow
from bastion.mail.layout import MailLayout
from bastion.mail.messages import Links
from bastion.mail.ports import MailTransport
from bastion.mail.worker import OutboxWorker
from bastion.mfa.service import MfaRules, MfaService
from bastion.operations.service import Operations
from bastion.owners.service import OwnerRules, OwnerService
from bastion.pages.views import Asset, Pages, Views
from bastion.passwords.policy import PasswordPolicy, common_passwords
from bastion.passwords.service import PasswordService, ResetRules
from bastion.ratelimit.model import HOUR, MINUTE, LoginRules, Rule
from bastion.ratelimit.ports import Limiter
from bastion.ratelimit.service import EndpointRules, RateLimits
from bastion.retention.model import RetentionRules
from bastion.retention.service import PURGE_LEASE, RetentionPurge
from bastion.sessions.authentication import Authenticator
from bastion.sessions.service import SessionRules, SessionService
from bastion.settings import Settings, resolve_secret_key
from bastion.storage import UnitOfWorkFactory
from bastion.tokens.service import ROTATION_LEASE, TokenService
from bastion.webhooks.model import WebhookRules
from bastion.webhooks.ports import Resolver, Sender
from bastion.webhooks.service import WebhookService, WebhookWorker

log = structlog.get_logger("bastion")
EXPORTS_PER_HOUR = 5


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    uow: UnitOfWorkFactory
    clock: Clock
    hasher: Argon2PasswordHasher
    metrics: Metrics
    limiter: Limiter
    outbox_worker: OutboxWorker
    tokens: TokenService
    accounts: AccountService
    authenticator: Authenticator
    sessions: SessionService
    login: LoginFlow
    passwords: PasswordService
    admin: AdminService
    audit: AuditService
    limits: RateLimits
    operations: Operations
    mfa: MfaService
    owners: OwnerService
    pages: Pages
    retention: RetentionPurge
    service_keys: ServiceKeyService
    events: EventFeed
    webhooks: WebhookService
    webhook_worker: WebhookWorker
    webhook_sender: Sender
    # Each background task's lease; the CLI runs the same jobs under them.
    purge_lease: OneAtATime
    rotation_lease: OneAtATime
    background: list[PeriodicTask]

    async def start(self) -> None:
        # Loaded now rather than by the first sign-up, which would otherwise wait for it.
        common_passwords()
        try:
            await self.tokens.ensure_key()
        except StorageUnavailable:
            # Start anyway: requests get 503 until the database is back, then keys load lazily.
            log.error("startup.database_unavailable")
        if self.settings.access_token_ttl > self.settings.event_retention:
            # A verifier that lost its place in the stream must refuse tokens until they expire;
            # past the retention it cannot tell what it missed.
            log.warning(
                "startup.access_token_outlives_event_retention",
                access_token_ttl=self.settings.access_token_ttl,
                event_retention=self.settings.event_retention,
            )
        self.outbox_worker.start()
        self.events.start()
        self.webhook_worker.start()
        for task in self.background:
            task.start()

    async def stop(self) -> None:
        for task in self.background:
            await task.stop()
        await self.events.stop()
        await self.webhook_worker.stop()
        if isinstance(self.webhook_sender, HttpSender):
            await self.webhook_sender.close()
        await self.outbox_worker.stop()
        self.hasher.close()
        await self.limiter.close()
        await self.engine.dispose()


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    limiter: Limiter | None = None,
    mail_transport: MailTransport | None = None,
    metrics: Metrics | None = None,
    uow: UnitOfWorkFactory | None = None,
    webhook_rules: WebhookRules | None = None,
    webhook_resolver: Resolver | None = None,
    webhook_sender: Sender | None = None,
) -> Services:
    """Wire every service from the settings. Tests pass a replacement for an adapter (a
    ``FrozenClock``, a mail transport, an in-memory ``uow``) instead of patching; without one,
    the settings choose it."""
    secret = resolve_secret_key(settings)
    clock = clock or SystemClock()
    engine = create_engine(settings.database_url)
    metrics = metrics or Metrics()
    limiter = limiter or build_limiter(settings, metrics)
    uow = uow or SqlUnitOfWorkFactory(
        engine,
        Sealer(derive_key(secret, "bastion/storage-encryption")),
        audit_observer=metrics,
    )
    transport = mail_transport or (
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
        layout=MailLayout(brand_of(settings)),
        observer=metrics,
    )
    hasher = Argon2PasswordHasher(
        Argon2Parameters(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        ),
        threads=settings.hash_threads,
        on_hash_time=metrics.observe_hash_time,
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
    policy = PasswordPolicy(
        min_length=settings.password_min_length,
        require_uppercase=settings.password_require_uppercase,
        require_lowercase=settings.password_require_lowercase,
        require_digit=settings.password_require_digit,
    )
    authenticator = Authenticator(uow, tokens, clock, settings.session_cache_seconds)
    sessions = SessionService(
        uow,
        tokens,
        clock,
        SessionRules(
            session_ttl=settings.session_ttl,
            remember_me_ttl=settings.remember_me_ttl,
            refresh_retry_seconds=settings.refresh_retry_seconds,
        ),
        outbox_worker.wake,
        authenticator.forget,
    )
    rules = endpoint_rules(settings)
    devices = DeviceCookies(Signer(derive_key(secret, "bastion/device-cookie")))
    login_records = LoginRecords(uow, clock, links, outbox_worker.wake)
    mfa = MfaService(
        uow,
        clock,
        limiter,
        mfa_rules(settings, links),
        Sealer(derive_key(secret, "bastion/totp-secrets")),
        derive_key(secret, "bastion/recovery-codes"),
        outbox_worker.wake,
        authenticator.forget,
    )
    login = LoginFlow(
        LoginAdmission(
            limiter, uow, clock, login_rules(settings), rules.per_ip, devices, login_records
        ),
        PasswordCheck(uow, hasher),
        sessions,
        devices,
        login_records,
        mfa,
        uow,
    )
    holder = instance_name()
    purge_lease = OneAtATime(PURGE_LEASE, uow, clock, holder=holder)
    rotation_lease = OneAtATime(ROTATION_LEASE, uow, clock, holder=holder)
    retention = RetentionPurge(
        uow,
        clock,
        RetentionRules(
            audit_days=settings.audit_retention_days,
            session_days=settings.session_retention_days,
            event_seconds=settings.event_retention,
        ),
        batch_size=settings.purge_batch_size,
    )
    background = [
        PeriodicTask(purge_lease, retention.purge, every=settings.maintenance_interval_seconds)
    ]
    if settings.signing_key_rotation_days:
        rotate = partial(
            tokens.rotate_if_older_than, timedelta(days=settings.signing_key_rotation_days)
        )
        background.append(
            PeriodicTask(rotation_lease, rotate, every=settings.maintenance_interval_seconds)
        )
    webhook_rules = webhook_rules or WebhookRules(
        allow_private=settings.webhook_allow_private, allow_http=not settings.is_production
    )
    resolver = webhook_resolver or SystemResolver()
    sender = webhook_sender or HttpSender()
    webhook_worker = WebhookWorker(uow, clock, webhook_rules, resolver, sender, outbox_worker.wake)
    return Services(
        settings=settings,
        engine=engine,
        uow=uow,
        clock=clock,
        hasher=hasher,
        metrics=metrics,
        limiter=limiter,
        outbox_worker=outbox_worker,
        tokens=tokens,
        accounts=AccountService(
            uow,
            hasher,
            clock,
            AccountRules(
                policy=policy,
                verification_token_ttl=settings.verification_token_ttl,
                links=links,
            ),
            outbox_worker.wake,
        ),
        authenticator=authenticator,
        sessions=sessions,
        login=login,
        passwords=PasswordService(
            uow,
            hasher,
            clock,
            ResetRules(policy=policy, reset_token_ttl=settings.reset_token_ttl, links=links),
            outbox_worker.wake,
            authenticator.forget,
            # A wrong current password counts as a failed log-in, through the log-in's steps.
            confirmation=login,
        ),
        admin=AdminService(
            uow,
            clock,
            authenticator.forget,
            hasher=hasher,
            rules=AdminRules(
                policy=policy,
                invite_token_ttl=settings.invite_token_ttl,
                reset_token_ttl=settings.reset_token_ttl,
                links=links,
            ),
            mail_queued=outbox_worker.wake,
        ),
        audit=AuditService(uow),
        limits=RateLimits(limiter, clock, rules),
        operations=Operations(uow, limiter, metrics),
        mfa=mfa,
        owners=OwnerService(
            uow,
            hasher,
            clock,
            OwnerRules(
                policy=policy,
                email_change_token_ttl=settings.email_change_token_ttl,
                links=links,
            ),
            outbox_worker.wake,
            authenticator.forget,
        ),
        pages=Pages(
            views=Views(brand_of(settings), logo_of(settings)),
            form_key=derive_key(secret, "bastion/page-forms"),
            secure_cookies=settings.cookie_secure,
            public_origin=settings.public_origin,
            redirect_origins=tuple(settings.allowed_redirect_origins),
            policy=policy,
            verification_link_seconds=settings.verification_token_ttl,
            reset_link_seconds=settings.reset_token_ttl,
            email_change_link_seconds=settings.email_change_token_ttl,
            invite_link_seconds=settings.invite_token_ttl,
        ),
        retention=retention,
        service_keys=ServiceKeyService(uow, clock),
        events=EventFeed(
            uow,
            clock,
            timedelta(seconds=settings.event_retention),
            None if settings.is_sqlite else PostgresWakeups(engine),
        ),
        webhooks=WebhookService(uow, clock, webhook_rules, resolver, webhook_worker.wake),
        webhook_worker=webhook_worker,
        webhook_sender=sender,
        purge_lease=purge_lease,
        rotation_lease=rotation_lease,
        background=background,
    )


def brand_of(settings: Settings) -> Brand:
    return Brand(
        name=settings.brand_name,
        color=settings.brand_color,
        public_url=settings.public_url,
        has_logo=settings.brand_logo_path is not None,
        support_email=settings.support_email,
    )


def logo_of(settings: Settings) -> Asset | None:
    path = settings.brand_logo_path
    if path is None:
        return None
    return Asset(path.read_bytes(), LOGO_TYPES[path.suffix.lower()])


def instance_name() -> str:
    """Who holds a lease: the host and process, for the operator reading the leases table, and
    a random part, since one process may build several instances (tests do)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def build_limiter(settings: Settings, metrics: Metrics) -> Limiter:
    """Redis when configured (with in-process limits while it is unreachable), else memory."""
    if settings.redis_url is None:
        return MemoryLimiter()
    return FallbackLimiter(
        RedisLimiter(settings.redis_url, settings.redis_key_prefix),
        MemoryLimiter(),
        on_degraded=metrics.set_limiter_degraded,
    )


def login_rules(settings: Settings) -> LoginRules:
    return LoginRules(
        max_failures=settings.login_max_failures,
        failure_window=settings.login_failure_window,
        block_seconds=settings.login_block_seconds,
        account_max_failures=settings.account_max_failures,
        account_block_seconds=settings.account_block_seconds,
    )


def mfa_rules(settings: Settings, links: Links) -> MfaRules:
    return MfaRules(
        required_roles=tuple(settings.mfa_required_roles),
        reauth_max_age=settings.reauth_max_age,
        mfa_token_ttl=settings.mfa_token_ttl,
        rp_id=settings.rp_id,
        rp_name=settings.webauthn_rp_name,
        origins=tuple(settings.webauthn_allowed_origins),
        links=links,
    )


def endpoint_rules(settings: Settings) -> EndpointRules:
    return EndpointRules(
        per_ip=Rule("ip", settings.rate_limit_per_minute, MINUTE),
        per_user=Rule("user", settings.user_rate_limit_per_minute, MINUTE),
        register=Rule("register", settings.register_per_hour, HOUR),
        forgot_password=Rule("forgot-password", settings.forgot_password_per_hour, HOUR),
        verification_resend=Rule(
            "verification-resend", settings.verification_resend_per_hour, HOUR
        ),
        # An export reads everything about the account: a few a day is all an owner needs.
        export=Rule("export", EXPORTS_PER_HOUR, HOUR),
    )
