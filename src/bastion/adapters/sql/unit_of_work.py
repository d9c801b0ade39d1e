"""The SQL unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.accounts.errors import EmailTaken
from bastion.adapters.sql import tables
from bastion.adapters.sql.audit import SqlAuditLog
from bastion.adapters.sql.database import READ_ONLY
from bastion.adapters.sql.email_changes import SqlEmailChangeRepository
from bastion.adapters.sql.events import SqlEventLog
from bastion.adapters.sql.leases import SqlLeases
from bastion.adapters.sql.mfa import (
    SqlFactorRepository,
    SqlMfaTokenRepository,
    SqlRecoveryCodeRepository,
    SqlWebAuthnChallengeRepository,
)
from bastion.adapters.sql.one_time_tokens import SqlOneTimeTokenRepository
from bastion.adapters.sql.outbox import SqlOutbox
from bastion.adapters.sql.purgeable import SqlPurgeableRows
from bastion.adapters.sql.service_keys import SqlServiceKeyRepository
from bastion.adapters.sql.sessions import SqlSessionRepository
from bastion.adapters.sql.signing_keys import SqlSigningKeyRepository
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.adapters.sql.users import SECURITY_STATE_HELD, SqlUserRepository
from bastion.adapters.sql.webhooks import SqlDeliveryRepository, SqlWebhookRepository
from bastion.audit.ports import AuditObserver
from bastion.core.context import SecurityStamp
from bastion.core.errors import StorageUnavailable
from bastion.core.secrets import Sealer

# Failures that mean "the database is not reachable right now", as opposed to a bug.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout, OSError, TimeoutError)


# SQLSTATE classes of a server that is up but refuses work for now: insufficient resources
# ("too many clients already", 53300), operator intervention (shutting down, starting up) and
# connection exceptions.
UNAVAILABLE_SQLSTATE_CLASSES = ("53", "57", "08")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, UNAVAILABLE):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    refused = isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATE_CLASSES)
    return exc.connection_invalidated or refused


class SqlUnitOfWork:
    users: SqlUserRepository
    verification_tokens: SqlOneTimeTokenRepository
    reset_tokens: SqlOneTimeTokenRepository
    invitation_tokens: SqlOneTimeTokenRepository
    email_changes: SqlEmailChangeRepository
    sessions: SqlSessionRepository
    signing_keys: SqlSigningKeyRepository
    outbox: SqlOutbox
    audit: SqlAuditLog
    mfa_factors: SqlFactorRepository
    recovery_codes: SqlRecoveryCodeRepository
    webauthn_challenges: SqlWebAuthnChallengeRepository
    mfa_tokens: SqlMfaTokenRepository
    leases: SqlLeases
    purgeable: SqlPurgeableRows
    service_keys: SqlServiceKeyRepository
    events: SqlEventLog
    webhooks: SqlWebhookRepository
    webhook_deliveries: SqlDeliveryRepository

    def __init__(
        self,
        engine: AsyncEngine,
        sealer: Sealer,
        *,
        read_only: bool = False,
        single_statement: bool = False,
        audit_observer: AuditObserver | None = None,
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._read_only = read_only
        self._single_statement = single_statement
        self._audit_observer = audit_observer
        self._transaction: SqlTransaction | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
        try:
            connection = await self._engine.connect()
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailable() from exc
            raise
        if self._read_only:
            connection = await connection.execution_options(**_read_only_options(connection))
        transaction = self._transaction = SqlTransaction(
            connection, single_statement=self._single_statement
        )
        self.users = SqlUserRepository(transaction)
        self.verification_tokens = SqlOneTimeTokenRepository(
            transaction, tables.email_verification_tokens
        )
        self.reset_tokens = SqlOneTimeTokenRepository(transaction, tables.password_reset_tokens)
        self.invitation_tokens = SqlOneTimeTokenRepository(transaction, tables.invitation_tokens)
        self.email_changes = SqlEmailChangeRepository(transaction)
        self.sessions = SqlSessionRepository(transaction)
        self.signing_keys = SqlSigningKeyRepository(transaction)
        self.outbox = SqlOutbox(transaction, self._sealer)
        self.audit = SqlAuditLog(transaction)
        self.mfa_factors = SqlFactorRepository(transaction)
        self.recovery_codes = SqlRecoveryCodeRepository(transaction)
        self.webauthn_challenges = SqlWebAuthnChallengeRepository(transaction)
        self.mfa_tokens = SqlMfaTokenRepository(transaction)
        self.leases = SqlLeases(transaction)
        self.purgeable = SqlPurgeableRows(transaction)
        self.service_keys = SqlServiceKeyRepository(transaction)
        self.events = SqlEventLog(transaction)
        self.webhooks = SqlWebhookRepository(transaction, self._sealer)
        self.webhook_deliveries = SqlDeliveryRepository(transaction)
        return self

    def commit_only_while(self, stamp: SecurityStamp) -> None:
        if self._transaction is None:
            raise RuntimeError("commit_only_while() outside the unit of work")
        self._transaction.require(
            SECURITY_STATE_HELD, {"held_user_id": stamp.user_id, "held_version": stamp.version}
        )

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("commit() outside the unit of work")
        try:
            await self._transaction.commit()
        except Exception as exc:
            if is_unavailable(exc):
                raise StorageUnavailable() from exc
            raise
        committed, self.audit.recorded = self.audit.recorded, []
        if self._audit_observer is not None:
            for event in committed:
                self._audit_observer.recorded(event)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        transaction, self._transaction = self._transaction, None
        try:
            if transaction is not None:
                await transaction.close()
        except Exception as cleanup_error:
            if exc is None and not is_unavailable(cleanup_error):
                raise
        if exc is not None and is_unavailable(exc):
            raise StorageUnavailable() from exc
        if exc is not None and is_email_taken(exc):
            raise EmailTaken() from exc


def is_email_taken(exc: BaseException) -> bool:
    """Whether ``exc`` is the users table refusing a second account with the same email (named
    by its constraint on PostgreSQL, by its column on SQLite)."""
    message = str(exc)
    return isinstance(exc, IntegrityError) and (
        "uq_users_email" in message or "users.email" in message
    )


def _read_only_options(connection: AsyncConnection) -> dict[str, object]:
    if connection.dialect.name == "postgresql":
        # Reads need no transaction of their own on PostgreSQL: autocommit saves the BEGIN and
        # ROLLBACK round trips, which dominate a one-query use case such as GET /me.
        return {"isolation_level": "AUTOCOMMIT"}
    return {READ_ONLY: True}


class SqlUnitOfWorkFactory:
    def __init__(
        self, engine: AsyncEngine, sealer: Sealer, *, audit_observer: AuditObserver | None = None
    ) -> None:
        self._engine = engine
        self._sealer = sealer
        self._audit_observer = audit_observer

    def __call__(self, *, read_only: bool = False, single_statement: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(
            self._engine,
            self._sealer,
            read_only=read_only,
            single_statement=single_statement,
            audit_observer=self._audit_observer,
        )
