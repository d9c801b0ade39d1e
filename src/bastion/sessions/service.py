"""Sessions: starting one, refresh-token rotation, the caller's sessions and revocation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bastion.accounts.model import User
from bastion.audit.model import EventType, event
from bastion.core.clock import Clock
from bastion.core.context import Principal, RequestContext
from bastion.core.secrets import hash_token, new_token
from bastion.events.model import sessions_revoked
from bastion.mail import messages
from bastion.sessions.errors import (
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionNotFound,
    SessionRevoked,
)
from bastion.sessions.model import (
    PASSWORD_AAL,
    PASSWORD_AMR,
    RevokeReason,
    Session,
    new_session,
    session_lifetime,
)
from bastion.storage import UnitOfWork, UnitOfWorkFactory
from bastion.tokens.model import AccessClaims, access_token_expiry
from bastion.tokens.service import TokenService


@dataclass(frozen=True, slots=True)
class SessionRules:
    session_ttl: int
    remember_me_ttl: int
    refresh_retry_seconds: int = 0


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    session: Session
    refresh_token: str | None
    browser_token: str | None = None  # the cookie of a session started on Bastion's pages


class SessionService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        tokens: TokenService,
        clock: Clock,
        rules: SessionRules,
        mail_queued: Callable[[], None],
        sessions_revoked: Callable[[list[uuid.UUID]], None],
    ) -> None:
        self._uow = uow
        self._tokens = tokens
        self._clock = clock
        self._rules = rules
        self._mail_queued = mail_queued
        # Revocations must reach this process's session-liveness cache at once.
        self._sessions_revoked = sessions_revoked

    async def start_session(
        self,
        user: User,
        remember_me: bool,
        context: RequestContext,
        *,
        browser: bool = False,
        aal: str = PASSWORD_AAL,
        amr: tuple[str, ...] = PASSWORD_AMR,
    ) -> IssuedTokens:
        """A new session for a user who just signed in: the one place sessions are created.

        ``user`` is the account as the credential check saw it. The session, its refresh token
        and the event are written only while the account's security state is still that one
        (in one statement with them); otherwise nothing is, and ``SecurityStateChanged`` is
        raised, so that no token claims a role, or outlives a deactivation, a new password or
        a deletion, that changed after the check.

        A session started on Bastion's own pages (``browser``) is carried by a cookie whose
        hash is stored, as a refresh token's is; it has no refresh token.

        ``aal`` and ``amr`` say how the user proved who they are (a password by default).
        """
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
            aal=aal,
            amr=amr,
        )
        refresh_token = new_token() if remember_me and not browser else None
        browser_token = new_token() if browser else None
        async with self._uow() as uow:
            uow.commit_only_while(user.security_stamp)
            await uow.sessions.add(session)
            if refresh_token is not None:
                await uow.sessions.add_refresh_token(hash_token(refresh_token), session.id, now)
            if browser_token is not None:
                await uow.sessions.add_browser_token(hash_token(browser_token), session.id, now)
            await uow.audit.record(
                event(
                    EventType.LOGIN_SUCCEEDED,
                    now,
                    context,
                    user.id,
                    session_id=str(session.id),
                    remember_me=remember_me,
                    aal=aal,
                    amr=list(amr),
                )
            )
            await uow.commit()
        issued = await self._issue(user, session, refresh_token)
        return replace(issued, browser_token=browser_token)

    async def refresh(self, refresh_token: str | None, context: RequestContext) -> IssuedTokens:
        """Trade a refresh token for a new access token and a new refresh token.

        Each refresh token works once. Presenting a spent one means two parties hold it, so the
        whole session is revoked. The UPDATE that spends it is the only arbiter between racing
        requests, on every database and across processes.

        One exception: a client whose refresh was done but never answered (a 503 after the
        commit, a cut connection) presents the same token again. Within
        ``refresh_retry_seconds`` of the trade, and while what it was traded for is unused, it
        is traded once more and that first successor is spent. Nothing is lost to a thief by
        this: whoever then presents the spent successor is taken for one, as before.
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
            if session_id is None and self._rules.refresh_retry_seconds:
                since = now - timedelta(seconds=self._rules.refresh_retry_seconds)
                session_id = await uow.sessions.retry_rotation(
                    token_hash, hash_token(new_refresh_token), now, since
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

    async def reassure(self, principal: Principal, aal: str, amr: tuple[str, ...]) -> IssuedTokens:
        """Record a new proof of the caller's session (a reauthentication, a factor just
        confirmed), now, at ``aal``: a new access token for the same session carrying it."""
        now = self._clock.now()
        async with self._uow() as uow:
            session = await uow.sessions.set_assurance(principal.session_id, aal, amr, now)
            user = await uow.users.get(principal.user_id)
            if (
                session is None
                or user is None
                or session.user_id != user.id
                or not session.is_active(now)
            ):
                raise SessionRevoked()
            await uow.commit()
        return await self._issue(user, session, None)

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

    async def revoke_others(self, principal: Principal, context: RequestContext) -> None:
        """End every session of the caller but the one making the request."""
        await self._revoke(
            principal.user_id,
            RevokeReason.USER,
            EventType.SESSION_REVOKED,
            context,
            keep=principal.session_id,
        )

    async def _revoke(
        self,
        user_id: uuid.UUID,
        reason: RevokeReason,
        event_type: EventType,
        context: RequestContext,
        *,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        now = self._clock.now()
        async with self._uow() as uow:
            revoked = await uow.sessions.revoke(user_id, now, reason.value, only=only, keep=keep)
            await uow.events.publish(*sessions_revoked(user_id, revoked, now))
            if revoked:
                await uow.audit.record(
                    event(event_type, now, context, user_id, session_ids=[str(s) for s in revoked])
                )
            await uow.commit()
        self._sessions_revoked(revoked)
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
        await uow.events.publish(*sessions_revoked(session.user_id, revoked, now))
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
        self._sessions_revoked(revoked)
        self._mail_queued()
        raise RefreshTokenReused()

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
            aal=session.aal,
            amr=session.amr,
            auth_time=session.authenticated_at,
        )
        return IssuedTokens(
            access_token=await self._tokens.issue(claims),
            expires_in=max(int((expires_at - now).total_seconds()), 0),
            session=session,
            refresh_token=refresh_token,
        )
