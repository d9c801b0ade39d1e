"""In-memory fakes of the storage ports: the unit of work and every repository.

The contract suites in ``tests/contracts/`` run the same tests over SQLite, PostgreSQL and these
fakes, so the fast service tests in ``tests/unit/`` may stand on them.

A unit of work works on a copy of the store and puts the copy back when it commits; leaving it
without committing drops the copy. Units of work that write run one at a time (a lock from
entry to exit), like SQLite's write transactions, so racing requests meet the same arbiter they
meet in a database.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from bastion.accounts.errors import EmailTaken, SecurityStateChanged
from bastion.accounts.model import Role, User
from bastion.audit.model import AuditEvent, scrub
from bastion.audit.ports import AuditObserver
from bastion.background.model import Lease, may_take
from bastion.core.account_at import AccountAt
from bastion.core.context import SecurityStamp
from bastion.core.one_time_tokens import OneTimeToken
from bastion.credentials.model import ServiceKey
from bastion.events.model import Position, StreamEvent
from bastion.mail.model import EmailMessage, QueuedMessage
from bastion.mfa.model import (
    MFA_TOKEN_MAX_WRONG_CODES,
    ChallengePurpose,
    Factor,
    MfaToken,
    TotpFactor,
    WebAuthnChallenge,
    WebAuthnCredential,
    sign_count_accepted,
)
from bastion.owners.model import EmailChange
from bastion.retention.model import Purgeable
from bastion.sessions.model import Session
from bastion.tokens.model import SigningKey
from bastion.webhooks.model import Delivery, DeliveryStatus, Webhook


@dataclass(frozen=True, slots=True)
class RefreshToken:
    session_id: uuid.UUID
    created_at: datetime
    rotated_at: datetime | None = None
    successor_hash: str | None = None
    retried_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    message: EmailMessage
    next_attempt_at: datetime
    attempts: int = 0
    locked_until: datetime | None = None
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RecoveryCode:
    created_at: datetime
    used_at: datetime | None = None


@dataclass
class Tables:
    """Every table, as rows keyed like the database's primary keys."""

    users: dict[uuid.UUID, User] = field(default_factory=dict)
    verification_tokens: dict[str, OneTimeToken] = field(default_factory=dict)
    reset_tokens: dict[str, OneTimeToken] = field(default_factory=dict)
    invitation_tokens: dict[str, OneTimeToken] = field(default_factory=dict)
    email_changes: dict[str, EmailChange] = field(default_factory=dict)
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    browser_tokens: dict[str, uuid.UUID] = field(default_factory=dict)
    signing_keys: dict[str, SigningKey] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    audit: dict[int, AuditEvent] = field(default_factory=dict)
    mfa_factors: dict[uuid.UUID, Factor] = field(default_factory=dict)
    recovery_codes: dict[tuple[uuid.UUID, str], RecoveryCode] = field(default_factory=dict)
    webauthn_challenges: dict[str, WebAuthnChallenge] = field(default_factory=dict)
    mfa_tokens: dict[str, MfaToken] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)
    service_keys: dict[uuid.UUID, tuple[ServiceKey, str]] = field(default_factory=dict)
    events: dict[int, StreamEvent] = field(default_factory=dict)
    webhooks: dict[uuid.UUID, tuple[Webhook, str]] = field(default_factory=dict)
    webhook_deliveries: dict[int, Delivery] = field(default_factory=dict)
    webhook_cursor: dict[str, int] = field(default_factory=dict)

    def account_at(self, account: AccountAt) -> User | None:
        """The user ``account`` stands for, if there is one."""
        user = next((u for u in self.users.values() if u.email == account.email), None)
        if user is None or not account.awaiting_verification:
            return user
        return user if user.is_active and not user.is_verified else None

    def delete_user(self, user_id: uuid.UUID) -> None:
        """Delete a user and what the database's foreign keys cascade to."""
        self.users.pop(user_id, None)
        for tokens in (
            self.verification_tokens,
            self.reset_tokens,
            self.invitation_tokens,
            self.email_changes,
        ):
            for token_hash in [h for h, t in tokens.items() if t.user_id == user_id]:
                del tokens[token_hash]
        self.delete_sessions(
            [sid for sid, session in self.sessions.items() if session.user_id == user_id]
        )
        for rows in (self.mfa_factors, self.webauthn_challenges, self.mfa_tokens):
            for key in [k for k, row in rows.items() if row.user_id == user_id]:
                del rows[key]
        for owner, digest in [key for key in self.recovery_codes if key[0] == user_id]:
            del self.recovery_codes[owner, digest]

    def delete_sessions(self, session_ids: Sequence[uuid.UUID]) -> None:
        """Delete sessions and, as the foreign keys cascade, their refresh and browser tokens."""
        gone = set(session_ids)
        for session_id in gone:
            del self.sessions[session_id]
        for token_hash in [h for h, t in self.refresh_tokens.items() if t.session_id in gone]:
            del self.refresh_tokens[token_hash]
        for token_hash in [h for h, sid in self.browser_tokens.items() if sid in gone]:
            del self.browser_tokens[token_hash]


class FakeUserRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, user: User) -> None:
        self._tables.users[user.id] = user

    async def get(self, user_id: uuid.UUID) -> User | None:
        return self._tables.users.get(user_id)

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        # Units of work that write run one at a time: nobody else changes the user meanwhile.
        return await self.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        return next((u for u in self._tables.users.values() if u.email == email), None)

    async def update(self, user: User) -> None:
        if user.id in self._tables.users:
            self._tables.users[user.id] = user

    async def upgrade_password_hash(
        self, user_id: uuid.UUID, verified_hash: str, upgraded_hash: str
    ) -> bool:
        user = self._tables.users.get(user_id)
        if user is None or user.password_hash != verified_hash:
            return False
        self._tables.users[user_id] = replace(user, password_hash=upgraded_hash)
        return True

    async def delete(self, user_id: uuid.UUID) -> None:
        self._tables.delete_user(user_id)

    async def search(
        self, *, email_contains: str | None, role: Role | None, after: uuid.UUID | None, limit: int
    ) -> list[User]:
        found = [
            user
            for user in self._tables.users.values()
            if (not email_contains or email_contains in user.email)
            and (role is None or user.role is role)
            and (after is None or user.id > after)
        ]
        return sorted(found, key=lambda user: user.id)[:limit]

    async def count_active_admins(self) -> int:
        return sum(1 for u in self._tables.users.values() if u.role is Role.ADMIN and u.is_active)


class FakeOneTimeTokenRepository:
    def __init__(self, tables: Tables, tokens: dict[str, OneTimeToken]) -> None:
        self._tables = tables
        self._tokens = tokens

    async def add(self, token: OneTimeToken) -> None:
        self._tokens[token.token_hash] = token

    async def add_for(
        self, account: AccountAt, token_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        user = self._tables.account_at(account)
        if user is not None:
            await self.add(OneTimeToken(token_hash, user.id, created_at, expires_at))

    async def get(self, token_hash: str) -> OneTimeToken | None:
        return self._tokens.get(token_hash)

    async def spend(self, token_hash: str, now: datetime) -> bool:
        token = self._tokens.get(token_hash)
        if token is None or token.used_at is not None:
            return False
        self._tokens[token_hash] = replace(token, used_at=now)
        return True

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        for token_hash, token in list(self._tokens.items()):
            if token.user_id == user_id and token.used_at is None:
                self._tokens[token_hash] = replace(token, used_at=now)


class FakeEmailChangeRepository:
    def __init__(self, tables: Tables) -> None:
        self._changes = tables.email_changes

    async def add(self, change: EmailChange) -> None:
        self._changes[change.token_hash] = change

    async def get(self, token_hash: str) -> EmailChange | None:
        return self._changes.get(token_hash)

    async def spend(self, token_hash: str, now: datetime) -> bool:
        change = self._changes.get(token_hash)
        if change is None or change.used_at is not None:
            return False
        self._changes[token_hash] = dataclasses.replace(change, used_at=now)
        return True

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        for token_hash, change in list(self._changes.items()):
            if change.user_id == user_id and change.used_at is None:
                self._changes[token_hash] = dataclasses.replace(change, used_at=now)


class FakeSessionRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, session: Session) -> None:
        self._tables.sessions[session.id] = session

    async def get(self, session_id: uuid.UUID) -> Session | None:
        return self._tables.sessions.get(session_id)

    async def get_many(self, session_ids: Sequence[uuid.UUID]) -> list[Session]:
        sessions = self._tables.sessions
        return [sessions[sid] for sid in dict.fromkeys(session_ids) if sid in sessions]

    async def list_active(self, user_id: uuid.UUID, now: datetime) -> list[Session]:
        active = [
            s
            for s in self._tables.sessions.values()
            if s.user_id == user_id and s.revoked_at is None and s.expires_at > now
        ]
        return sorted(active, key=lambda s: s.created_at, reverse=True)

    async def list_kept(self, user_id: uuid.UUID) -> list[Session]:
        kept = [s for s in self._tables.sessions.values() if s.user_id == user_id]
        return sorted(kept, key=lambda s: s.created_at, reverse=True)

    async def resume(self, session_id: uuid.UUID, now: datetime) -> tuple[Session, User] | None:
        session = await self.touch(session_id, now)
        user = self._tables.users.get(session.user_id) if session else None
        return (session, user) if session and user else None

    async def touch(self, session_id: uuid.UUID, now: datetime) -> Session | None:
        session = self._tables.sessions.get(session_id)
        if session is None:
            return None
        session = self._tables.sessions[session_id] = replace(session, last_seen_at=now)
        return session

    async def set_assurance(
        self, session_id: uuid.UUID, aal: str, amr: Sequence[str], auth_time: datetime
    ) -> Session | None:
        session = self._tables.sessions.get(session_id)
        if session is None or session.revoked_at is not None:
            return None
        session = self._tables.sessions[session_id] = replace(
            session, aal=aal, amr=tuple(amr), auth_time=auth_time
        )
        return session

    async def revoke(
        self,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        revoked = [
            s.id
            for s in self._tables.sessions.values()
            if s.user_id == user_id
            and s.revoked_at is None
            and (only is None or s.id == only)
            and (keep is None or s.id != keep)
        ]
        for session_id in revoked:
            self._tables.sessions[session_id] = replace(
                self._tables.sessions[session_id], revoked_at=now, revoke_reason=reason
            )
        return revoked

    async def add_refresh_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None:
        self._tables.refresh_tokens[token_hash] = RefreshToken(session_id, now)

    async def rotate_refresh_token(
        self, token_hash: str, successor_hash: str, now: datetime
    ) -> uuid.UUID | None:
        token = self._tables.refresh_tokens.get(token_hash)
        if token is None or token.rotated_at is not None:
            return None
        self._tables.refresh_tokens[token_hash] = replace(
            token, rotated_at=now, successor_hash=successor_hash
        )
        await self.add_refresh_token(successor_hash, token.session_id, now)
        return token.session_id

    async def retry_rotation(
        self, token_hash: str, successor_hash: str, now: datetime, since: datetime
    ) -> uuid.UUID | None:
        tokens = self._tables.refresh_tokens
        token = tokens.get(token_hash)
        if (
            token is None
            or token.rotated_at is None
            or token.rotated_at < since
            or token.retried_at is not None
            or token.successor_hash is None
        ):
            return None
        unused = tokens.get(token.successor_hash)
        if unused is None or unused.rotated_at is not None:
            return None
        tokens[token.successor_hash] = replace(unused, rotated_at=now)
        tokens[token_hash] = replace(token, retried_at=now, successor_hash=successor_hash)
        await self.add_refresh_token(successor_hash, token.session_id, now)
        return token.session_id

    async def refresh_token_session(self, token_hash: str) -> uuid.UUID | None:
        token = self._tables.refresh_tokens.get(token_hash)
        return None if token is None else token.session_id

    async def add_browser_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None:
        self._tables.browser_tokens[token_hash] = session_id

    async def browser_session(self, token_hash: str) -> tuple[Session, User] | None:
        session_id = self._tables.browser_tokens.get(token_hash)
        session = self._tables.sessions.get(session_id) if session_id else None
        user = self._tables.users.get(session.user_id) if session else None
        return (session, user) if session and user else None


class FakeSigningKeyRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def list(self) -> list[SigningKey]:
        return list(self._tables.signing_keys.values())

    async def add(self, key: SigningKey) -> None:
        self._tables.signing_keys[key.kid] = key

    async def revoke(self, kid: str, now: datetime) -> bool:
        key = self._tables.signing_keys.get(kid)
        if key is None or key.revoked_at is not None:
            return False
        self._tables.signing_keys[kid] = dataclasses.replace(key, revoked_at=now)
        return True


class FakeOutbox:
    def __init__(self, tables: Tables, ids: itertools.count[int]) -> None:
        self._tables = tables
        self._rows = tables.outbox
        self._ids = ids

    async def add(self, message: EmailMessage, now: datetime) -> None:
        self._rows[next(self._ids)] = OutboxRow(message, next_attempt_at=now)

    async def add_for(self, account: AccountAt, message: EmailMessage, now: datetime) -> None:
        if self._tables.account_at(account) is not None:
            await self.add(message, now)

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[QueuedMessage]:
        due = [
            message_id
            for message_id, row in sorted(self._rows.items())
            if row.sent_at is None
            and row.failed_at is None
            and row.next_attempt_at <= now
            and (row.locked_until is None or row.locked_until < now)
        ][:limit]
        claimed = []
        for message_id in due:
            row = self._rows[message_id]
            row = self._rows[message_id] = replace(
                row, locked_until=lease_until, attempts=row.attempts + 1
            )
            claimed.append(QueuedMessage(message_id, row.message, row.attempts))
        return claimed

    async def mark_sent(self, message_ids: Sequence[int], now: datetime) -> None:
        for message_id in message_ids:
            self._set(message_id, sent_at=now, locked_until=None, last_error=None)

    async def forget(self, message_ids: Sequence[int]) -> None:
        for message_id in message_ids:
            self._rows.pop(message_id, None)

    async def release(self, message_ids: Sequence[int]) -> None:
        for message_id in message_ids:
            row = self._rows.get(message_id)
            if row is not None and row.sent_at is None:
                self._set(message_id, locked_until=None, attempts=row.attempts - 1)

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None:
        self._set(message_id, next_attempt_at=next_attempt_at, locked_until=None, last_error=error)

    async def mark_failed(self, message_id: int, now: datetime, error: str) -> None:
        self._set(message_id, failed_at=now, locked_until=None, last_error=error)

    async def backlog(self) -> int:
        return sum(1 for r in self._rows.values() if r.sent_at is None and r.failed_at is None)

    async def forget_recipient(self, recipient: str) -> None:
        for message_id in [i for i, r in self._rows.items() if r.message.recipient == recipient]:
            del self._rows[message_id]

    def _set(self, message_id: int, **changes: Any) -> None:
        if message_id in self._rows:
            self._rows[message_id] = replace(self._rows[message_id], **changes)


class FakeAuditLog:
    def __init__(self, tables: Tables, ids: itertools.count[int]) -> None:
        self._tables = tables
        self._events = tables.audit
        self._ids = ids
        self.recorded: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)
        self._store(event)

    async def record_for(self, account: AccountAt, event: AuditEvent) -> None:
        self.recorded.append(event)
        user = self._tables.account_at(account)
        self._store(replace(event, user_id=None if user is None else user.id))

    def _store(self, event: AuditEvent) -> None:
        event_id = next(self._ids)
        user_agent = event.user_agent[:512] if event.user_agent else None
        self._events[event_id] = replace(
            event, id=event_id, user_agent=user_agent, details=copy.deepcopy(event.details)
        )

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        type: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        found = [
            e
            for event_id, e in sorted(self._events.items(), reverse=True)
            if (user_id is None or e.user_id == user_id)
            and (type is None or e.type.value == type)
            and (before is None or event_id < before)
        ]
        return [replace(e, details=copy.deepcopy(e.details)) for e in found[:limit]]

    async def erase(self, email: str) -> int:
        changed = 0
        for event_id, e in list(self._events.items()):
            details = scrub(e.details, email)
            if details != e.details:
                self._events[event_id] = replace(e, details=details)
                changed += 1
        return changed


class FakeFactorRepository:
    def __init__(self, tables: Tables) -> None:
        self._factors = tables.mfa_factors

    async def add_totp(self, factor: TotpFactor) -> None:
        self._factors[factor.id] = factor

    async def add_webauthn(self, credential: WebAuthnCredential) -> None:
        self._factors[credential.id] = credential

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> list[Factor]:
        # for_update needs no lock here: units of work that write run one at a time.
        theirs = [f for f in self._factors.values() if f.user_id == user_id]
        return sorted(theirs, key=lambda f: (f.created_at, f.id))

    async def get(self, user_id: uuid.UUID, factor_id: uuid.UUID) -> Factor | None:
        factor = self._factors.get(factor_id)
        return factor if factor is not None and factor.user_id == user_id else None

    async def credential(self, credential_id: bytes) -> WebAuthnCredential | None:
        return next(
            (
                f
                for f in self._factors.values()
                if isinstance(f, WebAuthnCredential) and f.credential_id == credential_id
            ),
            None,
        )

    async def confirm_totp(
        self, factor_id: uuid.UUID, step: int, now: datetime, created_after: datetime
    ) -> bool:
        factor = self._factors.get(factor_id)
        if (
            not isinstance(factor, TotpFactor)
            or factor.confirmed
            or factor.created_at <= created_after
        ):
            return False
        self._factors[factor_id] = replace(
            factor, confirmed_at=now, last_used_at=now, last_step=step
        )
        return True

    async def advance_totp_step(self, factor_id: uuid.UUID, step: int, now: datetime) -> bool:
        factor = self._factors.get(factor_id)
        if not isinstance(factor, TotpFactor) or not factor.confirmed:
            return False
        if factor.last_step is not None and factor.last_step >= step:
            return False
        self._factors[factor_id] = replace(factor, last_step=step, last_used_at=now)
        return True

    async def record_assertion(
        self, factor_id: uuid.UUID, sign_count: int, backup_state: bool, now: datetime
    ) -> bool:
        factor = self._factors.get(factor_id)
        if not isinstance(factor, WebAuthnCredential):
            return False
        if not sign_count_accepted(factor.sign_count, sign_count):
            return False
        self._factors[factor_id] = replace(
            factor, sign_count=sign_count, backup_state=backup_state, last_used_at=now
        )
        return True

    async def rename(self, user_id: uuid.UUID, factor_id: uuid.UUID, name: str) -> bool:
        factor = await self.get(user_id, factor_id)
        if factor is None:
            return False
        self._factors[factor_id] = replace(factor, name=name)
        return True

    async def delete(self, user_id: uuid.UUID, factor_ids: Sequence[uuid.UUID]) -> int:
        theirs = [i for i in dict.fromkeys(factor_ids) if await self.get(user_id, i)]
        for factor_id in theirs:
            del self._factors[factor_id]
        return len(theirs)


class FakeRecoveryCodeRepository:
    def __init__(self, tables: Tables) -> None:
        self._codes = tables.recovery_codes

    async def replace(self, user_id: uuid.UUID, digests: Sequence[str], now: datetime) -> None:
        await self.delete_all(user_id)
        for digest in digests:
            self._codes[user_id, digest] = RecoveryCode(created_at=now)

    async def use(self, user_id: uuid.UUID, digest: str, now: datetime) -> bool:
        code = self._codes.get((user_id, digest))
        if code is None or code.used_at is not None:
            return False
        self._codes[user_id, digest] = replace(code, used_at=now)
        return True

    async def remaining(self, user_id: uuid.UUID) -> int:
        return sum(
            1
            for (owner, _), code in self._codes.items()
            if owner == user_id and code.used_at is None
        )

    async def delete_all(self, user_id: uuid.UUID) -> None:
        for owner, digest in [key for key in self._codes if key[0] == user_id]:
            del self._codes[owner, digest]


class FakeWebAuthnChallengeRepository:
    def __init__(self, tables: Tables) -> None:
        self._challenges = tables.webauthn_challenges

    async def add(self, challenge: WebAuthnChallenge) -> None:
        for key in [k for k, c in self._challenges.items() if c.expires_at <= challenge.created_at]:
            del self._challenges[key]
        self._challenges[challenge.challenge_hash] = challenge

    async def spend(
        self, challenge_hash: str, purpose: ChallengePurpose, now: datetime
    ) -> WebAuthnChallenge | None:
        challenge = self._challenges.get(challenge_hash)
        if challenge is None or challenge.purpose is not purpose or challenge.expires_at <= now:
            return None
        return self._challenges.pop(challenge_hash)


class FakeMfaTokenRepository:
    def __init__(self, tables: Tables) -> None:
        self._tokens = tables.mfa_tokens

    async def add(self, token: MfaToken) -> None:
        for key in [k for k, t in self._tokens.items() if t.expires_at <= token.created_at]:
            del self._tokens[key]
        self._tokens[token.token_hash] = token

    async def get(self, token_hash: str) -> MfaToken | None:
        return self._tokens.get(token_hash)

    async def spend(self, token_hash: str, now: datetime) -> MfaToken | None:
        token = self._usable(token_hash, now)
        if token is None:
            return None
        spent = self._tokens[token_hash] = replace(token, used_at=now)
        return spent

    async def count_wrong_code(self, token_hash: str, now: datetime) -> int | None:
        token = self._usable(token_hash, now)
        if token is None:
            return None
        counted = self._tokens[token_hash] = replace(token, wrong_codes=token.wrong_codes + 1)
        return counted.wrong_codes

    def _usable(self, token_hash: str, now: datetime) -> MfaToken | None:
        """The token if the SQL adapter's conditional statements would change it."""
        token = self._tokens.get(token_hash)
        if (
            token is None
            or token.used_at is not None
            or token.expires_at <= now
            or token.wrong_codes >= MFA_TOKEN_MAX_WRONG_CODES
        ):
            return None
        return token


class FakeLeases:
    def __init__(self, tables: Tables) -> None:
        self._leases = tables.leases

    async def acquire(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        if not may_take(self._leases.get(name), holder, now):
            return False
        self._leases[name] = Lease(name, holder, now + ttl)
        return True

    async def release(self, name: str, holder: str) -> None:
        lease = self._leases.get(name)
        if lease is not None and lease.holder == holder:
            del self._leases[name]


class FakeServiceKeyRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, key: ServiceKey, key_hash: str) -> None:
        self._tables.service_keys[key.id] = (key, key_hash)

    async def by_hash(self, key_hash: str) -> ServiceKey | None:
        return next((k for k, h in self._tables.service_keys.values() if h == key_hash), None)

    async def list(self) -> list[ServiceKey]:
        keys = [key for key, _ in self._tables.service_keys.values()]
        return sorted(keys, key=lambda key: (key.created_at, key.id))

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        found = self._tables.service_keys.get(key_id)
        if found is None:
            return False
        key, key_hash = found
        if key.revoked_at is None:
            self._tables.service_keys[key_id] = (replace(key, revoked_at=now), key_hash)
        return True


class FakeEventLog:
    def __init__(self, tables: Tables, ids: itertools.count[int]) -> None:
        self._tables = tables
        self._ids = ids

    async def publish(self, *events: StreamEvent) -> None:
        for event in events:
            event_id = next(self._ids)
            self._tables.events[event_id] = replace(event, id=event_id)

    async def after(self, cursor: int, limit: int) -> list[StreamEvent]:
        return [self._tables.events[i] for i in sorted(self._tables.events) if i > cursor][:limit]

    async def newest_id(self) -> int:
        return max(self._tables.events, default=0)

    async def position(self, event_id: int) -> Position:
        found = self._tables.events.get(event_id)
        return Position(
            newest=max(self._tables.events, default=0),
            oldest=min(self._tables.events, default=None),
            occurred_at=found.occurred_at if found else None,
        )


class FakeWebhookRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def add(self, webhook: Webhook, secret: str) -> None:
        self._tables.webhooks[webhook.id] = (webhook, secret)

    async def get(self, webhook_id: uuid.UUID) -> Webhook | None:
        found = self._tables.webhooks.get(webhook_id)
        return found[0] if found else None

    async def secret(self, webhook_id: uuid.UUID) -> str | None:
        found = self._tables.webhooks.get(webhook_id)
        return found[1] if found else None

    async def list(self) -> list[Webhook]:
        hooks = [hook for hook, _ in self._tables.webhooks.values()]
        return sorted(hooks, key=lambda hook: (hook.created_at, hook.id))

    async def update(self, webhook: Webhook) -> None:
        if webhook.id in self._tables.webhooks:
            self._tables.webhooks[webhook.id] = (webhook, self._tables.webhooks[webhook.id][1])

    async def delete(self, webhook_id: uuid.UUID) -> bool:
        if self._tables.webhooks.pop(webhook_id, None) is None:
            return False
        deliveries = self._tables.webhook_deliveries
        for key in [k for k, d in deliveries.items() if d.webhook_id == webhook_id]:
            del deliveries[key]
        return True

    async def cursor(self) -> int | None:
        return self._tables.webhook_cursor.get("webhooks")

    async def set_cursor(self, position: int) -> None:
        self._tables.webhook_cursor["webhooks"] = position


class FakeDeliveryRepository:
    def __init__(self, tables: Tables, ids: itertools.count[int]) -> None:
        self._tables = tables
        self._ids = ids
        self._leases: dict[int, datetime] = {}

    async def add(self, delivery: Delivery) -> None:
        delivery_id = next(self._ids)
        self._tables.webhook_deliveries[delivery_id] = replace(delivery, id=delivery_id)

    async def get(self, webhook_id: uuid.UUID, delivery_id: int) -> Delivery | None:
        found = self._tables.webhook_deliveries.get(delivery_id)
        return found if found and found.webhook_id == webhook_id else None

    async def of_webhook(
        self, webhook_id: uuid.UUID, *, before: int | None, limit: int
    ) -> list[Delivery]:
        found = [
            d
            for i, d in sorted(self._tables.webhook_deliveries.items(), reverse=True)
            if d.webhook_id == webhook_id and (before is None or i < before)
        ]
        return found[:limit]

    async def claim_due(self, now: datetime, limit: int, lease_until: datetime) -> list[Delivery]:
        due = [
            d
            for _, d in sorted(self._tables.webhook_deliveries.items())
            if d.status is DeliveryStatus.PENDING
            and d.next_attempt_at <= now
            and self._leases.get(d.id, now) <= now
        ][:limit]
        for delivery in due:
            self._leases[delivery.id] = lease_until
        return due

    async def save(self, delivery: Delivery, *, delivered_at: datetime | None = None) -> None:
        self._leases.pop(delivery.id, None)
        if delivery.id in self._tables.webhook_deliveries:
            self._tables.webhook_deliveries[delivery.id] = delivery

    async def ids_of(self, webhook_id: uuid.UUID) -> list[int]:
        return [i for i, d in self._tables.webhook_deliveries.items() if d.webhook_id == webhook_id]


class FakePurgeableRows:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def delete(self, kind: Purgeable, before: datetime, limit: int) -> int:
        rows, ended_at = self._kind(kind)
        ended = {key: ended_at(row) for key, row in rows.items()}
        past = sorted(
            (moment, key) for key, moment in ended.items() if moment is not None and moment < before
        )
        chosen = [key for _, key in past[:limit]]
        if rows is self._tables.sessions:
            self._tables.delete_sessions(chosen)
        else:
            for key in chosen:
                del rows[key]
        return len(chosen)

    def _kind(self, kind: Purgeable) -> tuple[dict[Any, Any], Callable[[Any], datetime | None]]:
        """The table of ``kind``, and when one of its rows ended (None: it is not of the kind)."""
        t = self._tables
        match kind:
            case Purgeable.AUDIT_EVENTS:
                return t.audit, lambda event: event.occurred_at
            case Purgeable.EXPIRED_SESSIONS:
                return t.sessions, lambda session: session.expires_at
            case Purgeable.REVOKED_SESSIONS:
                return t.sessions, lambda session: session.revoked_at
            case Purgeable.VERIFICATION_TOKENS:
                return t.verification_tokens, lambda token: token.expires_at
            case Purgeable.RESET_TOKENS:
                return t.reset_tokens, lambda token: token.expires_at
            case Purgeable.INVITATION_TOKENS:
                return t.invitation_tokens, lambda token: token.expires_at
            case Purgeable.EMAIL_CHANGE_TOKENS:
                return t.email_changes, lambda change: change.expires_at
            case Purgeable.SENT_EMAILS:
                return t.outbox, lambda row: row.sent_at
            case Purgeable.FAILED_EMAILS:
                return t.outbox, lambda row: row.failed_at if row.sent_at is None else None
            case Purgeable.STREAM_EVENTS:
                return t.events, lambda event: event.occurred_at


class FakeUnitOfWork:
    users: FakeUserRepository
    verification_tokens: FakeOneTimeTokenRepository
    reset_tokens: FakeOneTimeTokenRepository
    invitation_tokens: FakeOneTimeTokenRepository
    email_changes: FakeEmailChangeRepository
    sessions: FakeSessionRepository
    signing_keys: FakeSigningKeyRepository
    outbox: FakeOutbox
    audit: FakeAuditLog
    mfa_factors: FakeFactorRepository
    recovery_codes: FakeRecoveryCodeRepository
    webauthn_challenges: FakeWebAuthnChallengeRepository
    mfa_tokens: FakeMfaTokenRepository
    leases: FakeLeases
    purgeable: FakePurgeableRows
    service_keys: FakeServiceKeyRepository
    events: FakeEventLog
    webhooks: FakeWebhookRepository
    webhook_deliveries: FakeDeliveryRepository

    def __init__(self, store: FakeUnitOfWorkFactory, *, read_only: bool) -> None:
        self._store = store
        self._read_only = read_only
        self._tables: Tables | None = None
        self._committed = False
        self._required: SecurityStamp | None = None

    async def __aenter__(self) -> Self:
        if not self._read_only:
            await self._store.writer.acquire()
        tables = self._tables = self._store.snapshot()
        self.users = FakeUserRepository(tables)
        self.verification_tokens = FakeOneTimeTokenRepository(tables, tables.verification_tokens)
        self.reset_tokens = FakeOneTimeTokenRepository(tables, tables.reset_tokens)
        self.invitation_tokens = FakeOneTimeTokenRepository(tables, tables.invitation_tokens)
        self.email_changes = FakeEmailChangeRepository(tables)
        self.sessions = FakeSessionRepository(tables)
        self.signing_keys = FakeSigningKeyRepository(tables)
        self.outbox = FakeOutbox(tables, self._store.outbox_ids)
        self.audit = FakeAuditLog(tables, self._store.audit_ids)
        self.mfa_factors = FakeFactorRepository(tables)
        self.recovery_codes = FakeRecoveryCodeRepository(tables)
        self.webauthn_challenges = FakeWebAuthnChallengeRepository(tables)
        self.mfa_tokens = FakeMfaTokenRepository(tables)
        self.leases = FakeLeases(tables)
        self.purgeable = FakePurgeableRows(tables)
        self.service_keys = FakeServiceKeyRepository(tables)
        self.events = FakeEventLog(tables, self._store.event_ids)
        self.webhooks = FakeWebhookRepository(tables)
        self.webhook_deliveries = FakeDeliveryRepository(tables, self._store.delivery_ids)
        return self

    def commit_only_while(self, stamp: SecurityStamp) -> None:
        if self._tables is None:
            raise RuntimeError("commit_only_while() outside the unit of work")
        self._required = stamp

    async def commit(self) -> None:
        if self._tables is None:
            raise RuntimeError("commit() outside the unit of work")
        if self._committed:
            raise RuntimeError("the unit of work has committed; open a new one")
        if self._required is not None:
            # The committed tables are the state this unit of work began from (writers run one
            # at a time), which is what the database checks with its first statement.
            user = self._store.tables.users.get(self._required.user_id)
            if user is None or user.security_stamp != self._required:
                raise SecurityStateChanged()
        emails = [user.email for user in self._tables.users.values()]
        if len(emails) != len(set(emails)):
            # The database refuses the second account at the commit, and keeps nothing.
            raise EmailTaken()
        self._store.tables = self._tables
        self._committed = True
        committed, self.audit.recorded = self.audit.recorded, []
        if self._store.audit_observer is not None:
            for event in committed:
                self._store.audit_observer.recorded(event)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._tables = None
        if not self._read_only:
            self._store.writer.release()


class FakeUnitOfWorkFactory:
    """The storage of one test: a fresh, empty database in memory."""

    def __init__(self, *, audit_observer: AuditObserver | None = None) -> None:
        self.tables = Tables()
        self.writer = asyncio.Lock()
        self.outbox_ids = itertools.count(1)
        self.audit_ids = itertools.count(1)
        self.event_ids = itertools.count(1)
        self.delivery_ids = itertools.count(1)
        self.audit_observer = audit_observer

    def __call__(
        self, *, read_only: bool = False, single_statement: bool = False
    ) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, read_only=read_only)

    def snapshot(self) -> Tables:
        """A copy a unit of work may change: rows are immutable, so copying the tables is
        enough."""
        return Tables(**{name: dict(rows) for name, rows in vars(self.tables).items()})
