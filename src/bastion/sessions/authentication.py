"""Access-token checks: the token verifies, and its session is live."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

from bastion.core.clock import Clock
from bastion.core.context import Principal
from bastion.core.secrets import hash_token
from bastion.sessions.errors import SessionRevoked
from bastion.sessions.liveness import MAX_LOOKUP_BATCH, BatchedLookup, SessionLiveness
from bastion.sessions.model import Session, needs_touch
from bastion.storage import UnitOfWorkFactory
from bastion.tokens.errors import InvalidToken
from bastion.tokens.service import TokenService


class Authenticator:
    """Who is behind an access token. Sessions are confirmed live in the database at most every
    ``cache_seconds`` per process (``liveness.py``), so most checks make no query."""

    def __init__(
        self, uow: UnitOfWorkFactory, tokens: TokenService, clock: Clock, cache_seconds: float
    ) -> None:
        self._uow = uow
        self._tokens = tokens
        self._clock = clock
        self._liveness = SessionLiveness(cache_seconds)
        self._lookups = BatchedLookup(self._look_up)

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
                aal=str(claims.get("aal", "aal1")),
                amr=tuple(str(value) for value in claims.get("amr", ("pwd",))),
                auth_time=int(claims.get("auth_time", claims["iat"])),
            )
        except (ValueError, TypeError, KeyError):
            raise InvalidToken() from None
        await self._ensure_live(principal)
        return principal

    async def authenticate_browser(self, browser_token: str) -> Principal | None:
        """The user behind a page session's cookie, if its session is live and the account may
        still sign in; every call asks the database, so a revocation counts at once."""
        now = self._clock.now()
        async with self._uow(read_only=True) as uow:
            found = await uow.sessions.browser_session(hash_token(browser_token))
        if found is None:
            return None
        session, user = found
        if not session.is_active(now) or not user.is_active:
            return None
        if needs_touch(session.last_seen_at, now):
            async with self._uow() as uow:
                await uow.sessions.touch(session.id, now)
                await uow.commit()
        return Principal(
            user_id=user.id,
            session_id=session.id,
            email=user.email,
            role=user.role.value,
            expires_at=int(session.expires_at.timestamp()),
            aal=session.aal,
            amr=session.amr,
            auth_time=int(session.authenticated_at.timestamp()),
        )

    def forget(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Drop cached liveness after sessions were revoked in this process."""
        self._liveness.forget(session_ids)

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
