"""The sessions and refresh_tokens tables: the ``SessionRepository`` port."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, bindparam, insert, select, update

from bastion.accounts.model import User
from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.adapters.sql.users import SqlUserRepository, user_from_row
from bastion.sessions.model import Session

# The statements of the busy paths are built once, as in users.py.
_users = tables.users.c
_sessions = tables.sessions.c
SESSION_BY_ID = select(tables.sessions).where(_sessions.id == bindparam("id"))
SESSIONS_BY_ID = select(tables.sessions).where(_sessions.id.in_(bindparam("ids", expanding=True)))
TOUCH_SESSION = (
    update(tables.sessions)
    .where(_sessions.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now"))
    .returning(*tables.sessions.c)
)
# PostgreSQL returns the user's columns from the same UPDATE (SQLite's RETURNING cannot).
RESUME_SESSION = (
    update(tables.sessions)
    .where(_sessions.id == bindparam("session_id"), _sessions.user_id == _users.id)
    .values(last_seen_at=bindparam("now"))
    .returning(*tables.sessions.c, *(column.label(f"account_{column.name}") for column in _users))
)
_refresh = tables.refresh_tokens.c
ROTATE_REFRESH_TOKEN = (
    update(tables.refresh_tokens)
    .where(_refresh.token_hash == bindparam("spent_hash"), _refresh.rotated_at.is_(None))
    .values(rotated_at=bindparam("now"), successor_hash=bindparam("next_hash"))
    .returning(_refresh.session_id)
)
# On PostgreSQL the successor is stored by the same statement that spends the token.
ROTATE_AND_STORE_SUCCESSOR = (
    insert(tables.refresh_tokens)
    .from_select(
        ["token_hash", "session_id", "created_at"],
        select(
            bindparam("next_hash", type_=_refresh.token_hash.type),
            ROTATE_REFRESH_TOKEN.cte("spent").c.session_id,
            bindparam("now", type_=_refresh.created_at.type),
        ),
    )
    .returning(_refresh.session_id)
)
_browser = tables.browser_tokens.c
BROWSER_SESSION = (
    select(*tables.sessions.c, *(column.label(f"account_{column.name}") for column in _users))
    .select_from(
        tables.browser_tokens.join(tables.sessions, _browser.session_id == _sessions.id).join(
            tables.users, _sessions.user_id == _users.id
        )
    )
    .where(_browser.token_hash == bindparam("token_hash"))
)
REFRESH_TOKEN_SESSION = select(_refresh.session_id).where(
    _refresh.token_hash == bindparam("token_hash")
)
# A retry is allowed once per token, soon after it was traded, while what it was traded for is
# unused. The spent token is locked first, as every rotation of it locks it, then its successor
# (locking them in the other order deadlocked racing retries on PostgreSQL); of racing retries,
# the first holds the token and the others then find it retried.
RETRIABLE_SUCCESSOR = (
    select(_refresh.session_id, _refresh.successor_hash)
    .where(
        _refresh.token_hash == bindparam("spent_hash"),
        _refresh.rotated_at >= bindparam("since"),
        _refresh.retried_at.is_(None),
        _refresh.successor_hash.is_not(None),
    )
    .with_for_update()
)
SUPERSEDE_SUCCESSOR = (
    update(tables.refresh_tokens)
    .where(_refresh.token_hash == bindparam("unused_hash"), _refresh.rotated_at.is_(None))
    .values(rotated_at=bindparam("now"))
)
RECORD_RETRY = (
    update(tables.refresh_tokens)
    .where(_refresh.token_hash == bindparam("spent_hash"))
    .values(retried_at=bindparam("now"), successor_hash=bindparam("next_hash"))
)


class SqlSessionRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, session: Session) -> None:
        self._db.insert_later(
            tables.sessions,
            {
                "id": session.id,
                "user_id": session.user_id,
                "created_at": session.created_at,
                "expires_at": session.expires_at,
                "last_seen_at": session.last_seen_at,
                "ip": session.ip,
                "user_agent": session.user_agent,
                "remember_me": session.remember_me,
                "revoked_at": session.revoked_at,
                "revoke_reason": session.revoke_reason,
                "aal": session.aal,
                "amr": " ".join(session.amr),
                "auth_time": session.authenticated_at,
            },
        )

    async def get(self, session_id: uuid.UUID) -> Session | None:
        row = (await self._db.execute(SESSION_BY_ID, {"id": session_id})).mappings().first()
        return session_from_row(row) if row else None

    async def get_many(self, session_ids: Sequence[uuid.UUID]) -> list[Session]:
        rows = (await self._db.execute(SESSIONS_BY_ID, {"ids": list(session_ids)})).mappings()
        return [session_from_row(row) for row in rows]

    async def list_active(self, user_id: uuid.UUID, now: datetime) -> list[Session]:
        s = tables.sessions.c
        query = (
            select(tables.sessions)
            .where(s.user_id == user_id, s.revoked_at.is_(None), s.expires_at > now)
            .order_by(s.created_at.desc())
        )
        return [session_from_row(row) for row in (await self._db.execute(query)).mappings()]

    async def list_kept(self, user_id: uuid.UUID) -> list[Session]:
        s = tables.sessions.c
        query = select(tables.sessions).where(s.user_id == user_id).order_by(s.created_at.desc())
        return [Session(**row) for row in (await self._db.execute(query)).mappings()]

    async def resume(self, session_id: uuid.UUID, now: datetime) -> tuple[Session, User] | None:
        if self._db.dialect != "postgresql":
            session = await self.touch(session_id, now)
            user = await SqlUserRepository(self._db).get(session.user_id) if session else None
            return (session, user) if session and user else None
        parameters = {"session_id": session_id, "now": now}
        row = (await self._db.execute(RESUME_SESSION, parameters)).mappings().first()
        return _session_and_user(row)

    async def touch(self, session_id: uuid.UUID, now: datetime) -> Session | None:
        result = await self._db.execute(TOUCH_SESSION, {"session_id": session_id, "now": now})
        row = result.mappings().first()
        return session_from_row(row) if row else None

    async def set_assurance(
        self, session_id: uuid.UUID, aal: str, amr: Sequence[str], auth_time: datetime
    ) -> Session | None:
        s = tables.sessions.c
        statement = (
            update(tables.sessions)
            .where(s.id == session_id, s.revoked_at.is_(None))
            .values(aal=aal, amr=" ".join(amr), auth_time=auth_time)
            .returning(*tables.sessions.c)
        )
        row = (await self._db.execute(statement)).mappings().first()
        return session_from_row(row) if row else None

    async def revoke(
        self,
        user_id: uuid.UUID,
        now: datetime,
        reason: str,
        *,
        only: uuid.UUID | None = None,
        keep: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        s = tables.sessions.c
        statement = (
            update(tables.sessions)
            .where(s.user_id == user_id, s.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
            .returning(s.id)
        )
        if only is not None:
            statement = statement.where(s.id == only)
        if keep is not None:
            statement = statement.where(s.id != keep)
        return list((await self._db.execute(statement)).scalars())

    async def add_refresh_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None:
        self._db.insert_later(
            tables.refresh_tokens,
            {"token_hash": token_hash, "session_id": session_id, "created_at": now},
        )

    async def rotate_refresh_token(
        self, token_hash: str, successor_hash: str, now: datetime
    ) -> uuid.UUID | None:
        parameters = {"spent_hash": token_hash, "next_hash": successor_hash, "now": now}
        in_one_statement = self._db.dialect == "postgresql"
        statement = ROTATE_AND_STORE_SUCCESSOR if in_one_statement else ROTATE_REFRESH_TOKEN
        result = await self._db.execute(statement, parameters)
        session_id: uuid.UUID | None = result.scalar_one_or_none()
        if session_id is not None and not in_one_statement:
            await self.add_refresh_token(successor_hash, session_id, now)
        return session_id

    async def retry_rotation(
        self, token_hash: str, successor_hash: str, now: datetime, since: datetime
    ) -> uuid.UUID | None:
        found = (
            await self._db.execute(RETRIABLE_SUCCESSOR, {"spent_hash": token_hash, "since": since})
        ).first()
        if found is None:
            return None
        session_id: uuid.UUID = found.session_id
        unused: str = found.successor_hash
        superseded = await self._db.execute(
            SUPERSEDE_SUCCESSOR, {"unused_hash": unused, "now": now}
        )
        if superseded.rowcount != 1:
            return None
        await self._db.execute(
            RECORD_RETRY, {"spent_hash": token_hash, "next_hash": successor_hash, "now": now}
        )
        await self.add_refresh_token(successor_hash, session_id, now)
        return session_id

    async def refresh_token_session(self, token_hash: str) -> uuid.UUID | None:
        result = await self._db.execute(REFRESH_TOKEN_SESSION, {"token_hash": token_hash})
        session_id: uuid.UUID | None = result.scalar_one_or_none()
        return session_id

    async def add_browser_token(
        self, token_hash: str, session_id: uuid.UUID, now: datetime
    ) -> None:
        self._db.insert_later(
            tables.browser_tokens,
            {"token_hash": token_hash, "session_id": session_id, "created_at": now},
        )

    async def browser_session(self, token_hash: str) -> tuple[Session, User] | None:
        result = await self._db.execute(BROWSER_SESSION, {"token_hash": token_hash})
        return _session_and_user(result.mappings().first())


def session_from_row(row: RowMapping | Mapping[str, Any]) -> Session:
    values: dict[str, Any] = {str(key): value for key, value in row.items()}
    values["amr"] = tuple(str(values.get("amr") or "").split())
    return Session(**values)


def _session_and_user(row: RowMapping | None) -> tuple[Session, User] | None:
    """A row of a session's columns and its user's (prefixed ``account_``)."""
    if row is None:
        return None
    session = session_from_row({column.name: row[column.name] for column in tables.sessions.c})
    return session, user_from_row({column.name: row[f"account_{column.name}"] for column in _users})
