"""Log-in, sessions, refresh-token rotation and revocation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bastion.accounts.model import User
from bastion.audit.model import EventType, LoginFailure, event
from bastion.core.clock import Clock
from bastion.core.context import RequestContext
from bastion.core.email_address import normalize_email
from bastion.core.secrets import hash_token, new_token
from bastion.mail import messages
from bastion.passwords.hashing import PasswordHasher
from bastion.sessions.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    SessionRevoked,
)
from bastion.sessions.liveness import MAX_LOOKUP_BATCH, BatchedLookup, SessionLiveness
from bastion.sessions.model import RevokeReason, Session, needs_touch, new_session, session_lifetime
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from bastion.tokens.errors import InvalidToken
from bastion.tokens.model import AccessClaims, access_token_expiry
from bastion.tokens.service import TokenService


@dataclass(frozen=True, slots=True)
class SessionRules:
    session_ttl: int
    remember_me_ttl: int
    cache_seconds: float


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    session: Session
    refresh_token: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a verified access token whose session is live."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    email: str
    role: str
    expires_at: int


class SessionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        hasher: PasswordHasher,
        tokens: TokenService,
        clock: Clock,
        rules: SessionRules,
        mail_queued: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self._rules = rules
        self._mail_queued = mail_queued
        self._liveness = SessionLiveness(rules.cache_seconds)
        self._lookups = BatchedLookup(self._look_up)

    async def login(
        self, email: str, password: str, remember_me: bool, context: RequestContext
    ) -> IssuedTokens:
        user = await self.check_password(email, password, context)
        return await self.start_session(user, remember_me, context)

    async def check_password(self, email: str, password: str, context: RequestContext) -> User:
        """The account these credentials open, or the error to show (after a full hash's time)."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get_by_email(normalize_email(email))
        if user is None:
            await self._hasher.verify_dummy(password)
            await self._record_failure(None, LoginFailure.UNKNOWN_EMAIL, context)
            raise InvalidCredentials()
        verification = await self._hasher.verify(user.password_hash, password)
        if not verification.valid:
            await self._record_failure(user.id, LoginFailure.WRONG_PASSWORD, context)
            raise InvalidCredentials()
        if not user.is_verified:
            await self._record_failure(user.id, LoginFailure.UNVERIFIED, context)
            raise EmailNotVerified()
        if not user.is_active:
            await self._record_failure(user.id, LoginFailure.DISABLED, context)
            raise AccountDisabled()
        if verification.needs_rehash:
            user = await self._rehash(user, password)
        return user

    async def start_session(
        self, user: User, remember_me: bool, context: RequestContext
    ) -> IssuedTokens:
        now = self._clock.now()
        lifetime = session_lifetime(
            remember_me, self._rules.session_ttl, self._rules.remember_me_ttl
        )
        session = new_session(
            user.id,
            now,
            lifetime,
            remember_me=remember_me,
            ip=context.ip,
            user_agent=context.user_agent,
        )
        refresh_token = new_token() if remember_me else None
        async with self._uow() as uow:
            await uow.sessions.add(session)
            if refresh_token is not None:
                await uow.sessions.add_refresh_token(hash_token(refresh_token), session.id, now)
            await uow.audit.record(
                event(
                    EventType.LOGIN_SUCCEEDED,
                    now,
                    context,
                    user.id,
                    session_id=str(session.id),
                    remember_me=remember_me,
                )
            )
            await uow.commit()
        return await self._issue(user, session, refresh_token)

    async def refresh(self, refresh_token: str | None, context: RequestContext) -> IssuedTokens:
        """Trade a refresh token for a new access token and a new refresh token.

        Each refresh token works once. Presenting a spent one means two parties hold it, so the
        whole session is revoked. The UPDATE that spends it is the only arbiter between racing
        requests, on every database and across processes.
        """
        if not refresh_token:
            raise InvalidRefreshToken()
        token_hash = hash_token(refresh_token)
        now = self._clock.now()
        async with self._uow() as uow:
            new_refresh_token = new_token()
            session_id = await uow.sessions.rotate_refresh_token(
                token_hash, hash_token(new_refresh_token), now
            )
            if session_id is None:
                await self._detect_reuse(uow, token_hash, now, context)
                raise InvalidRefreshToken()
            # Resuming returns the session and its user: on PostgreSQL, one statement instead
            # of a write and two reads. An inactive session's touch is rolled back with the
            # rest when we refuse below.
            resumed = await uow.sessions.resume(session_id, now)
            if resumed is None:
                raise InvalidRefreshToken()
            session, user = resumed
            if not session.is_active(now) or not user.is_active:
                raise InvalidRefreshToken()
            await uow.audit.record(
                event(EventType.REFRESH, now, context, user.id, session_id=str(session.id))
            )
            await uow.commit()
        return await self._issue(user, session, new_refresh_token)

    async def authenticate(self, access_token: str) -> Principal:
        """The caller, if the token verifies and its session is still live."""
        claims = await self._tokens.verify(access_token)
        try:
            principal = Principal(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                email=str(claims.get("email", "")),
                role=str(claims.get("role", "")),
                expires_at=int(claims["exp"]),
            )
        except (ValueError, TypeError, KeyError):
            raise InvalidToken() from None
        await self._ensure_live(principal)
        return principal

    async def list_sessions(self, user_id: uuid.UUID) -> list[Session]:
        async with self._uow(read_only=True) as uow:
            return await uow.sessions.list_active(user_id, self._clock.now())

    async def logout(self, principal: Principal, context: RequestContext) -> None:
        await self._revoke(
            principal.user_id,
            RevokeReason.LOGOUT,
            EventType.LOGOUT,
            context,
            only=principal.session_id,
        )

    async def revoke_session(
        self, principal: Principal, session_id: uuid.UUID, context: RequestContext
    ) -> None:
        revoked = await self._revoke(
            principal.user_id,
            RevokeReason.USER,
            EventType.SESSION_REVOKED,
            context,
            only=session_id,
        )
        if not revoked:
            raise SessionNotFound()

    async def revoke_all(self, principal: Principal, context: RequestContext) -> None:
        await self._revoke(
            principal.user_id, RevokeReason.ALL, EventType.ALL_SESSIONS_REVOKED, context
        )

    def forget(self, session_ids: list[uuid.UUID]) -> None:
        """Drop cached liveness after sessions were revoked in this process."""
        self._liveness.forget(session_ids)

    async def _revoke(
        self,
        user_id: uuid.UUID,
        reason: RevokeReason,
        event_type: EventType,
        context: RequestContext,
        *,
        only: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        now = self._clock.now()
        async with self._uow() as uow:
            revoked = await uow.sessions.revoke(user_id, now, reason.value, only=only)
            if revoked:
                await uow.audit.record(
                    event(event_type, now, context, user_id, session_ids=[str(s) for s in revoked])
                )
            await uow.commit()
        self.forget(revoked)
        return revoked

    async def _detect_reuse(
        self, uow: UnitOfWork, token_hash: str, now: datetime, context: RequestContext
    ) -> None:
        """Treat a spent refresh token presented to a live session as theft: end the session.

        Returns only if the token is unknown or its session is already over.
        """
        session_id = await uow.sessions.refresh_token_session(token_hash)
        session = await uow.sessions.get(session_id) if session_id is not None else None
        if session is None or not session.is_active(now):
            return
        revoked = await uow.sessions.revoke(
            session.user_id, now, RevokeReason.REFRESH_REUSE.value, only=session.id
        )
        if not revoked:
            # A concurrent request replayed the same token and already ended the session; it
            # records the event and warns the user, once.
            raise RefreshTokenReused()
        await uow.audit.record(
            event(
                EventType.REFRESH_REUSE_DETECTED,
                now,
                context,
                session.user_id,
                session_id=str(session.id),
            )
        )
        user = await uow.users.get(session.user_id)
        if user is not None:
            await uow.outbox.add(messages.refresh_token_reused(user.email), now)
        await uow.commit()
        self.forget(revoked)
        self._mail_queued()
        raise RefreshTokenReused()

    async def _ensure_live(self, principal: Principal) -> None:
        if self._liveness.known_live(principal.session_id):
            return
        session = await self._lookups.get(principal.session_id)
        if (
            session is None
            or session.user_id != principal.user_id
            or not session.is_active(self._clock.now())
        ):
            # Also forgotten when the session is live but not this caller's.
            self._liveness.forget([principal.session_id])
            raise SessionRevoked()

    async def _look_up(self, session_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Session]:
        """The sessions asked for, confirming in the same query the sessions in use that will
        lapse soon, and remembering every one found live."""
        asked = set(session_ids)
        riding = [sid for sid in self._liveness.lapsing(MAX_LOOKUP_BATCH) if sid not in asked][
            : MAX_LOOKUP_BATCH - len(asked)
        ]
        started = time.monotonic()
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            found = {s.id: s for s in await uow.sessions.get_many([*session_ids, *riding])}
        live = [s for s in found.values() if s.is_active(now)]
        stale = [s for s in live if needs_touch(s.last_seen_at, now)]
        if stale:
            async with self._uow() as uow:
                for session in stale:
                    await uow.sessions.touch(session.id, now)
                await uow.commit()
        for session in live:
            self._liveness.remember(session.id, confirmed_at=started)
        self._liveness.forget(asked.union(riding).difference(s.id for s in live))
        return found

    async def _issue(self, user: User, session: Session, refresh_token: str | None) -> IssuedTokens:
        now = self._clock.now()
        expires_at = access_token_expiry(now, self._tokens.access_token_ttl, session.expires_at)
        claims = AccessClaims(
            sub=user.id,
            email=user.email,
            role=user.role.value,
            sid=session.id,
            iat=now,
            exp=expires_at,
            jti=self._tokens.new_jti(),
        )
        return IssuedTokens(
            access_token=await self._tokens.issue(claims),
            expires_in=max(int((expires_at - now).total_seconds()), 0),
            session=session,
            refresh_token=refresh_token,
        )

    async def _rehash(self, user: User, password: str) -> User:
        """Upgrade a bcrypt or outdated Argon2 hash now that we know the password."""
        updated = replace(
            user, password_hash=await self._hasher.hash(password), updated_at=self._clock.now()
        )
        async with self._uow() as uow:
            await uow.users.update(updated)
            await uow.commit()
        return updated

    async def _record_failure(
        self, user_id: uuid.UUID | None, reason: LoginFailure, context: RequestContext
    ) -> None:
        async with self._uow() as uow:
            await uow.audit.record(
                event(
                    EventType.LOGIN_FAILED, self._clock.now(), context, user_id, reason=reason.value
                )
            )
            await uow.commit()
