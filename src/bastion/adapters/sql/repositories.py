"""SQL implementations of the storage ports, over one connection and its transaction."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql.dml import Update

from bastion.accounts.model import Role, User
from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.audit.model import AuditEvent, EventType, scrub
from bastion.core.one_time_tokens import OneTimeToken
from bastion.core.secrets import Sealer
from bastion.mail.model import EmailMessage, QueuedMessage
from bastion.sessions.model import Session
from bastion.tokens.model import SigningKey

# The statements of the busy paths are built once. (In an UPDATE, a parameter may not share
# a column's name.) SQLAlchemy then skips building them and
# computing their cache keys on every call, which costs as much as the round trip itself.
_users = tables.users.c
USER_BY_ID = select(tables.users).where(_users.id == bindparam("id"))
USER_BY_EMAIL = select(tables.users).where(_users.email == bindparam("email"))
UPDATE_USER = update(tables.users).where(_users.id == bindparam("user_id"))
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
    .values(rotated_at=bindparam("now"))
    .returning(_refresh.session_id)
)
# On PostgreSQL the successor is stored by the same statement that spends the token.
ROTATE_AND_STORE_SUCCESSOR = (
    insert(tables.refresh_tokens)
    .from_select(
        ["token_hash", "session_id", "created_at"],
        select(
            bindparam("successor_hash", type_=_refresh.token_hash.type),
            ROTATE_REFRESH_TOKEN.cte("spent").c.session_id,
            bindparam("now", type_=_refresh.created_at.type),
        ),
    )
    .returning(_refresh.session_id)
)
REFRESH_TOKEN_SESSION = select(_refresh.session_id).where(
    _refresh.token_hash == bindparam("token_hash")
)
MARK_SENT = (
    update(tables.outbox)
    .where(tables.outbox.c.id.in_(bindparam("message_ids", expanding=True)))
    .values(sent_at=bindparam("now"), locked_until=None, last_error=None)
)
UPDATE_OUTBOX_MESSAGE = update(tables.outbox).where(tables.outbox.c.id == bindparam("message_id"))


@functools.cache
def claim_due_messages(dialect: str) -> Update:
    o = tables.outbox.c
    now = bindparam("now", type_=o.next_attempt_at.type)
    due = (
        select(o.id)
        .where(
            o.sent_at.is_(None),
            o.failed_at.is_(None),
            o.next_attempt_at <= now,
            or_(o.locked_until.is_(None), o.locked_until < now),
        )
        .order_by(o.id)
        .limit(bindparam("limit"))
    )
    if dialect == "postgresql":
        # Instances polling at once each take different rows instead of waiting on a lock.
        due = due.with_for_update(skip_locked=True)
    return (
        update(tables.outbox)
        .where(o.id.in_(due.scalar_subquery()))
        .values(locked_until=bindparam("lease_until"), attempts=o.attempts + 1)
        .returning(o.id, o.recipient, o.kind, o.payload, o.attempts)
    )


class SqlUserRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, user: User) -> None:
        # A second account with the email fails at the commit: see SqlUnitOfWork.
        self._db.insert_later(tables.users, _user_row(user))

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self._one(USER_BY_ID, {"id": user_id})

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(USER_BY_EMAIL, {"email": email})

    async def update(self, user: User) -> None:
        changes = _user_row(user)
        await self._db.execute(UPDATE_USER, {"user_id": changes.pop("id"), **changes})

    async def delete(self, user_id: uuid.UUID) -> None:
        await self._db.execute(delete(tables.users).where(tables.users.c.id == user_id))

    async def search(
        self, *, email_contains: str | None, role: Role | None, after: uuid.UUID | None, limit: int
    ) -> list[User]:
        query = select(tables.users).order_by(tables.users.c.id).limit(limit)
        if email_contains:
            query = query.where(tables.users.c.email.contains(email_contains, autoescape=True))
        if role is not None:
            query = query.where(tables.users.c.role == role.value)
        if after is not None:
            query = query.where(tables.users.c.id > after)
        return [_user(row) for row in (await self._db.execute(query)).mappings()]

    async def count_active_admins(self) -> int:
        """Count the active admins and, on PostgreSQL, lock their rows until the transaction ends.

        Two admins demoting each other at once would otherwise both see two admins and leave
        none. The lock makes the second wait and then count what the first committed. (SQLite
        write transactions already run one at a time.)
        """
        u = tables.users.c
        query = select(u.id).where(u.role == Role.ADMIN.value, u.is_active.is_(True)).order_by(u.id)
        if self._db.dialect == "postgresql":
            query = query.with_for_update()
        return len((await self._db.execute(query)).all())

    async def _one(self, query: Any, parameters: dict[str, Any]) -> User | None:
        row = (await self._db.execute(query, parameters)).mappings().first()
        return _user(row) if row else None


def _user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "password_hash": user.password_hash,
        "role": user.role.value,
        "is_verified": user.is_verified,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        role=Role(row["role"]),
        is_verified=row["is_verified"],
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlOneTimeTokenRepository:
    def __init__(self, connection: SqlTransaction, table: Table) -> None:
        self._db = connection
        self._table = table

    async def add(self, token: OneTimeToken) -> None:
        self._db.insert_later(
            self._table,
            {
                "token_hash": token.token_hash,
                "user_id": token.user_id,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "used_at": token.used_at,
            },
        )

    async def get(self, token_hash: str) -> OneTimeToken | None:
        query = select(self._table).where(self._table.c.token_hash == token_hash)
        row = (await self._db.execute(query)).mappings().first()
        if row is None:
            return None
        return OneTimeToken(
            token_hash=row["token_hash"],
            user_id=row["user_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            used_at=row["used_at"],
        )

    async def spend(self, token_hash: str, now: datetime) -> bool:
        result = await self._db.execute(
            update(self._table)
            .where(self._table.c.token_hash == token_hash, self._table.c.used_at.is_(None))
            .values(used_at=now)
        )
        return result.rowcount == 1

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None:
        await self._db.execute(
            update(self._table)
            .where(self._table.c.user_id == user_id, self._table.c.used_at.is_(None))
            .values(used_at=now)
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
            },
        )

    async def get(self, session_id: uuid.UUID) -> Session | None:
        row = (await self._db.execute(SESSION_BY_ID, {"id": session_id})).mappings().first()
        return Session(**row) if row else None

    async def get_many(self, session_ids: Sequence[uuid.UUID]) -> list[Session]:
        rows = (await self._db.execute(SESSIONS_BY_ID, {"ids": list(session_ids)})).mappings()
        return [Session(**row) for row in rows]

    async def list_active(self, user_id: uuid.UUID, now: datetime) -> list[Session]:
        s = tables.sessions.c
        query = (
            select(tables.sessions)
            .where(s.user_id == user_id, s.revoked_at.is_(None), s.expires_at > now)
            .order_by(s.created_at.desc())
        )
        return [Session(**row) for row in (await self._db.execute(query)).mappings()]

    async def resume(self, session_id: uuid.UUID, now: datetime) -> tuple[Session, User] | None:
        if self._db.dialect != "postgresql":
            session = await self.touch(session_id, now)
            user = await SqlUserRepository(self._db).get(session.user_id) if session else None
            return (session, user) if session and user else None
        parameters = {"session_id": session_id, "now": now}
        row = (await self._db.execute(RESUME_SESSION, parameters)).mappings().first()
        if row is None:
            return None
        session = Session(**{column.name: row[column.name] for column in tables.sessions.c})
        return session, _user({column.name: row[f"account_{column.name}"] for column in _users})

    async def touch(self, session_id: uuid.UUID, now: datetime) -> Session | None:
        result = await self._db.execute(TOUCH_SESSION, {"session_id": session_id, "now": now})
        row = result.mappings().first()
        return Session(**row) if row else None

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
        parameters = {"spent_hash": token_hash, "successor_hash": successor_hash, "now": now}
        in_one_statement = self._db.dialect == "postgresql"
        statement = ROTATE_AND_STORE_SUCCESSOR if in_one_statement else ROTATE_REFRESH_TOKEN
        result = await self._db.execute(statement, parameters)
        session_id: uuid.UUID | None = result.scalar_one_or_none()
        if session_id is not None and not in_one_statement:
            await self.add_refresh_token(successor_hash, session_id, now)
        return session_id

    async def refresh_token_session(self, token_hash: str) -> uuid.UUID | None:
        result = await self._db.execute(REFRESH_TOKEN_SESSION, {"token_hash": token_hash})
        session_id: uuid.UUID | None = result.scalar_one_or_none()
        return session_id


class SqlSigningKeyRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def list(self) -> list[SigningKey]:
        rows = (await self._db.execute(select(tables.signing_keys))).mappings()
        return [
            SigningKey(
                kid=row["kid"],
                public_key=row["public_key"],
                private_key_sealed=row["private_key_sealed"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def add(self, key: SigningKey) -> None:
        await self._db.execute(
            insert(tables.signing_keys).values(
                kid=key.kid,
                algorithm="EdDSA",
                public_key=key.public_key,
                private_key_sealed=key.private_key_sealed,
                created_at=key.created_at,
            )
        )


class SqlOutbox:
    """The outbox table. Payloads are sealed: until delivered they carry one-time links."""

    def __init__(self, connection: SqlTransaction, sealer: Sealer) -> None:
        self._db = connection
        self._sealer = sealer

    async def add(self, message: EmailMessage, now: datetime) -> None:
        payload = json.dumps(
            {"subject": message.subject, "text": message.text, "html": message.html}
        ).encode()
        self._db.insert_later(
            tables.outbox,
            {
                "recipient": message.recipient,
                "kind": message.kind,
                "payload": self._sealer.seal(payload),
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            },
        )

    async def claim_due(
        self, now: datetime, limit: int, lease_until: datetime
    ) -> list[QueuedMessage]:
        statement = claim_due_messages(self._db.dialect)
        parameters = {"now": now, "limit": limit, "lease_until": lease_until}
        claimed = []
        for row in (await self._db.execute(statement, parameters)).mappings():
            content = json.loads(self._sealer.open(row["payload"]))
            message = EmailMessage(recipient=row["recipient"], kind=row["kind"], **content)
            claimed.append(QueuedMessage(id=row["id"], message=message, attempts=row["attempts"]))
        return sorted(claimed, key=lambda queued: queued.id)

    async def mark_sent(self, message_ids: Sequence[int], now: datetime) -> None:
        await self._db.execute(MARK_SENT, {"message_ids": list(message_ids), "now": now})

    async def mark_retry(self, message_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._set(
            message_id, next_attempt_at=next_attempt_at, locked_until=None, last_error=error
        )

    async def mark_failed(self, message_id: int, now: datetime, error: str) -> None:
        await self._set(message_id, failed_at=now, locked_until=None, last_error=error)

    async def backlog(self) -> int:
        o = tables.outbox.c
        query = select(func.count()).where(o.sent_at.is_(None), o.failed_at.is_(None))
        return int((await self._db.execute(query)).scalar_one())

    async def forget_recipient(self, recipient: str) -> None:
        await self._db.execute(delete(tables.outbox).where(tables.outbox.c.recipient == recipient))

    async def _set(self, message_id: int, **values: Any) -> None:
        await self._db.execute(UPDATE_OUTBOX_MESSAGE, {"message_id": message_id, **values})


class SqlAuditLog:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection
        # What this transaction recorded, for observers told once it commits.
        self.recorded: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)
        self._db.insert_later(
            tables.audit_events,
            {
                "occurred_at": event.occurred_at,
                "type": event.type.value,
                "user_id": event.user_id,
                "ip": event.ip,
                "user_agent": event.user_agent[:512] if event.user_agent else None,
                "details": event.details,
            },
        )

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        type: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        a = tables.audit_events.c
        conditions = []
        if user_id is not None:
            conditions.append(a.user_id == user_id)
        if type is not None:
            conditions.append(a.type == type)
        if before is not None:
            conditions.append(a.id < before)
        query = (
            select(tables.audit_events)
            .where(and_(True, *conditions))
            .order_by(a.id.desc())
            .limit(limit)
        )
        return [
            AuditEvent(
                id=row["id"],
                type=EventType(row["type"]),
                occurred_at=row["occurred_at"],
                user_id=row["user_id"],
                ip=row["ip"],
                user_agent=row["user_agent"],
                details=row["details"],
            )
            for row in (await self._db.execute(query)).mappings()
        ]

    async def erase(self, email: str) -> int:
        # JSON columns query differently on each database, so candidates are found by a text
        # match (the address as typed and as JSON escapes it) and rewritten here.
        a = tables.audit_events.c
        as_text = cast(a.details, String)
        forms = {email, json.dumps(email)[1:-1]}
        query = select(a.id, a.details).where(
            or_(*(as_text.ilike(f"%{_like_escape(form)}%", escape="\\") for form in forms))
        )
        changed = 0
        for row in (await self._db.execute(query)).all():
            details = scrub(row.details, email)
            if details != row.details:
                await self._db.execute(
                    update(tables.audit_events).where(a.id == row.id).values(details=details)
                )
                changed += 1
        return changed


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
