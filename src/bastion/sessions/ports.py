from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bastion.accounts.model import User
from bastion.sessions.model import Session


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...

    async def get(self, session_id: uuid.UUID) -> Session | None: ...

    async def get_many(self, session_ids: Sequence[uuid.UUID]) -> list[Session]:
        """The sessions among ``session_ids`` that exist, in no particular order."""
        ...

    async def list_active(self, user_id: uuid.UUID, now: datetime) -> list[Session]: ...

    async def list_kept(self, user_id: uuid.UUID) -> list[Session]:
        """Every session of the user still stored, ended ones included, newest first."""
        ...

    async def resume(self, session_id: uuid.UUID, now: datetime) -> tuple[Session, User] | None:
        """Record that the session was just used; the session as it now stands, and its user."""
        ...

    async def touch(self, session_id: uuid.UUID, now: datetime) -> Session | None:
        """Record that the session was just used; the session as it now stands."""
        ...

    async def set_assurance(
        self, session_id: uuid.UUID, aal: str, amr: Sequence[str], auth_time: datetime
    ) -> Session | None:
        """Record a new proof of a live session (a reauthentication, a factor just added):
        the session as it now stands, or None if it is not live."""
        ...

    async def revoke(
        self,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        """Revoke the user's live sessions (only one, or all but one); returns the revoked ids."""
        ...

    async def add_refresh_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None: ...

    async def rotate_refresh_token(
        self, token_hash: str, successor_hash: str, now: datetime
    ) -> uuid.UUID | None:
        """Atomically spend an unspent refresh token and store its successor in the same
        session; the session id, or None (and nothing stored) if it was not spendable."""
        ...

    async def retry_rotation(
        self, token_hash: str, successor_hash: str, now: datetime, since: datetime
    ) -> uuid.UUID | None:
        """Trade a spent refresh token again, once: only if it was spent at or after ``since``,
        was never traded again, and what it was traded for is still unused. That successor is
        spent (it will never work, nor be retried) and ``successor_hash`` is stored in its
        place. The session id, or None (and nothing changed)."""
        ...

    async def refresh_token_session(self, token_hash: str) -> uuid.UUID | None:
        """The session a refresh token (spent or not) belongs to."""
        ...

    async def add_browser_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None:
        """Tie the hash of a page session's cookie to its session."""
        ...

    async def browser_session(self, token_hash: str) -> tuple[Session, User] | None:
        """The session a page session's cookie belongs to (live or not), and its user."""
        ...
