"""The unit of work the use cases share: every repository over one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from bastion.accounts.ports import OneTimeTokenRepository, UserRepository
from bastion.audit.ports import AuditLog
from bastion.background.ports import Leases
from bastion.core.context import SecurityStamp
from bastion.credentials.ports import ServiceKeyRepository
from bastion.events.ports import EventLog
from bastion.mail.ports import Outbox
from bastion.mfa.ports import (
    FactorRepository,
    MfaTokenRepository,
    RecoveryCodeRepository,
    WebAuthnChallengeRepository,
)
from bastion.owners.ports import EmailChangeRepository
from bastion.retention.ports import PurgeableRows
from bastion.sessions.ports import SessionRepository
from bastion.tokens.ports import SigningKeyRepository
from bastion.webhooks.ports import DeliveryRepository, WebhookRepository


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without ``commit()`` rolls everything back."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def verification_tokens(self) -> OneTimeTokenRepository: ...

    @property
    def reset_tokens(self) -> OneTimeTokenRepository: ...

    @property
    def invitation_tokens(self) -> OneTimeTokenRepository: ...

    @property
    def email_changes(self) -> EmailChangeRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def signing_keys(self) -> SigningKeyRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def leases(self) -> Leases: ...

    @property
    def purgeable(self) -> PurgeableRows: ...

    @property
    def mfa_factors(self) -> FactorRepository: ...

    @property
    def recovery_codes(self) -> RecoveryCodeRepository: ...

    @property
    def webauthn_challenges(self) -> WebAuthnChallengeRepository: ...

    @property
    def mfa_tokens(self) -> MfaTokenRepository: ...

    @property
    def service_keys(self) -> ServiceKeyRepository: ...

    @property
    def events(self) -> EventLog:
        """What other services are told: written in the transaction of the change."""
        ...

    def commit_only_while(self, stamp: SecurityStamp) -> None:
        """Write only while the account still has the security state ``stamp``: checked with
        the first statement sent (the inserts that wait for the commit go in it), the account
        then left unchanged until the end. Otherwise that statement writes nothing, and the
        unit of work raises ``SecurityStateChanged``."""
        ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def webhook_deliveries(self) -> DeliveryRepository: ...

    async def commit(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False, single_statement: bool = False) -> UnitOfWork:
        """A new unit of work. ``read_only`` promises it writes nothing; ``single_statement``
        that its changes take one statement, so it may run without BEGIN and COMMIT."""
        ...
