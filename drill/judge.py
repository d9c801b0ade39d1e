"""After the drill: every acknowledged fact checked against the database, the SMTP sink and
the API; every request's outcome judged against the fault windows."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.adapters.sql import tables
from bastion.core.secrets import hash_token
from drill.config import CONNECTION_GRACE_SECONDS
from drill.faults import FaultWindow
from drill.ledger import Ledger, Record, Session, User, Verdict
from drill.sink import Mailbox

IN_CHUNK = 1000
HTTP_CHECK_CONCURRENCY = 16
# Logging in costs a full hash: a sample of the deactivated users is enough to show it is refused.
LOGIN_CHECKS = 20


@dataclass
class Lost:
    """One acknowledged fact that does not hold."""

    kind: str
    at: float  # when it was acknowledged (time.monotonic()); 0 when unknown
    detail: str


@dataclass
class Findings:
    lost: list[Lost] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)
    emails_promised: Counter[str] = field(default_factory=Counter)
    emails_missing: Counter[str] = field(default_factory=Counter)
    emails_duplicated: Counter[str] = field(default_factory=Counter)
    emails_unpromised: Counter[str] = field(default_factory=Counter)

    def fail(self, kind: str, detail: str, at: float = 0.0) -> None:
        self.lost.append(Lost(kind, at, detail))


def judge_connection_errors(records: Sequence[Record], faults: Sequence[FaultWindow]) -> None:
    """A connection error is clean only while a worker is down (or just after): turn the others
    into violations, in place."""
    windows = [(f.began, f.ended + CONNECTION_GRACE_SECONDS) for f in faults if f.workers_down]
    for index, record in enumerate(records):
        if record.verdict is not Verdict.CONNECTION:
            continue
        ended = record.started + record.seconds
        if not any(began <= ended and record.started <= until for began, until in windows):
            records[index] = Record(
                record.op,
                record.started,
                record.seconds,
                record.status,
                Verdict.VIOLATION,
                f"connection error while no worker was down ({record.detail})",
            )


async def check_facts(
    ledger: Ledger, engine: AsyncEngine, mailbox: Mailbox, base_url: str
) -> Findings:
    findings = Findings()
    users = [user for user in ledger.users if user.registered]
    rows = await _users_by_email(engine, [user.email for user in users])
    sessions = [s for user in users for s in user.sessions]
    session_rows = await _rows(
        engine, tables.sessions, tables.sessions.c.id, [s.id for s in sessions]
    )
    hashes = [hash_token(t) for s in sessions for t in (*s.spent, s.refresh_token) if t]
    token_rows = await _rows(
        engine, tables.refresh_tokens, tables.refresh_tokens.c.token_hash, hashes
    )
    hasher = PasswordHasher()
    for user in users:
        row = rows.get(user.email)
        findings.checked["registration"] += 1
        if row is None:
            findings.fail(
                "registration", f"{user.email} acknowledged (202) but not in the database"
            )
            continue
        if user.verified:
            findings.checked["verification"] += 1
            if not row["is_verified"]:
                findings.fail("verification", f"{user.email} confirmed (200) but not verified")
        if user.deactivated:
            findings.checked["deactivation"] += 1
            if row["is_active"]:
                findings.fail(
                    "deactivation",
                    f"{user.email} deactivated (200) but active",
                    user.deactivated_at or 0.0,
                )
        if user.resets and not user.in_doubt:
            password, at = user.resets[-1]
            findings.checked["reset"] += 1
            if not _verifies(hasher, row["password_hash"], password):
                findings.fail(
                    "reset", f"{user.email}: the acknowledged new password does not open it", at
                )
        for session in user.sessions:
            _check_session(findings, user, session, session_rows.get(session.id), token_rows)
    await _check_api(findings, ledger, base_url)
    _check_mail(findings, users, mailbox)
    return findings


def _check_session(
    findings: Findings,
    user: User,
    session: Session,
    row: dict[str, Any] | None,
    token_rows: dict[str, dict[str, Any]],
) -> None:
    findings.checked["session"] += 1
    if row is None:
        findings.fail(
            "session",
            f"session {session.id} issued (200) but not in the database",
            session.issued_at,
        )
        return
    revoked_by = _revoked_by(user, session)
    if revoked_by is not None:
        findings.checked[revoked_by] += 1
        if row["revoked_at"] is None:
            findings.fail(
                revoked_by,
                f"session {session.id} still live after an acknowledged {revoked_by}",
                session.issued_at,
            )
    for spent in session.spent:
        findings.checked["refresh (spent)"] += 1
        spent_row = token_rows.get(hash_token(spent))
        if spent_row is None or spent_row["rotated_at"] is None:
            findings.fail(
                "refresh (spent)",
                f"a refresh token of session {session.id} was rotated (200) but is unspent",
            )
    if session.spent and session.refresh_token and not session.in_doubt:
        findings.checked["refresh (successor)"] += 1
        current = token_rows.get(hash_token(session.refresh_token))
        if current is None or current["rotated_at"] is not None:
            findings.fail(
                "refresh (successor)",
                f"the refresh token handed out for session {session.id} does not hold",
            )


def _revoked_by(user: User, session: Session) -> str | None:
    """The acknowledged request that ended this session, if any."""
    if (
        user.deactivated
        and user.deactivated_at is not None
        and session.issued_at < user.deactivated_at
    ):
        return "deactivation (sessions end)"
    if any(session.issued_at < at for _, at in user.resets):
        return "reset (sessions end)"
    if session.revoked:
        return "logout"
    return None


async def _check_api(findings: Findings, ledger: Ledger, base_url: str) -> None:
    """What the API says now: ended sessions are refused, live ones work, and deactivated users
    cannot log in."""
    users = [user for user in ledger.users if user.registered]
    ended = [(u, s) for u in users for s in u.sessions if _revoked_by(u, s) is not None]
    live = [
        (u, s)
        for u in users
        if not u.in_doubt and not u.deactivated
        for s in u.live_sessions()
        if _revoked_by(u, s) is None
    ]
    deactivated = [u for u in users if u.deactivated][:LOGIN_CHECKS]
    gate = asyncio.Semaphore(HTTP_CHECK_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def token_status(session: Session) -> int:
            async with gate:
                headers = {"Authorization": f"Bearer {session.access_token}"}
                return (await client.get("/api/v1/auth/verify-token", headers=headers)).status_code

        async def login_status(user: User) -> int:
            async with gate:
                body = {"email": user.email, "password": user.password}
                return (await client.post("/api/v1/auth/login", json=body)).status_code

        for (user, session), status in zip(
            ended, await asyncio.gather(*(token_status(s) for _, s in ended)), strict=True
        ):
            findings.checked["ended session refused"] += 1
            if status != 401:
                findings.fail(
                    "ended session refused",
                    f"session {session.id} ({_revoked_by(user, session)}) answered {status}",
                )
        for (_, session), status in zip(
            live, await asyncio.gather(*(token_status(s) for _, s in live)), strict=True
        ):
            findings.checked["live session holds"] += 1
            if status != 200:
                findings.fail(
                    "live session holds",
                    f"session {session.id}, never ended, answered {status}",
                    session.issued_at,
                )
        for user, status in zip(
            deactivated, await asyncio.gather(*(login_status(u) for u in deactivated)), strict=True
        ):
            findings.checked["deactivated login refused"] += 1
            if status != 403:
                findings.fail(
                    "deactivated login refused",
                    f"{user.email} could log in after deactivation ({status})",
                )


def _check_mail(findings: Findings, users: Iterable[User], mailbox: Mailbox) -> None:
    for user in users:
        delivered = Counter(d.kind for d in mailbox.of_recipient(user.email))
        for kind, promised in user.promised.items():
            findings.emails_promised[kind] += promised
            got = delivered.get(kind, 0)
            if got < promised:
                findings.emails_missing[kind] += promised - got
                findings.fail(
                    "email",
                    f"{promised - got} {kind} email(s) promised to {user.email} never arrived",
                )
            elif got > promised:
                findings.emails_duplicated[kind] += got - promised
        for kind, got in delivered.items():
            if kind not in user.promised:
                findings.emails_unpromised[kind] += got


def _verifies(hasher: PasswordHasher, digest: str, password: str) -> bool:
    try:
        return hasher.verify(digest, password)
    except VerificationError:
        return False


async def _users_by_email(engine: AsyncEngine, emails: list[str]) -> dict[str, dict[str, Any]]:
    rows = await _rows(engine, tables.users, tables.users.c.email, emails)
    return {str(key): row for key, row in rows.items()}


async def _rows(
    engine: AsyncEngine, table: Any, key: Any, values: Sequence[Any]
) -> dict[Any, dict[str, Any]]:
    found: dict[Any, dict[str, Any]] = {}
    async with engine.connect() as connection:
        for start in range(0, len(values), IN_CHUNK):
            chunk = list(values[start : start + IN_CHUNK])
            result = await connection.execute(select(table).where(key.in_(chunk)))
            for row in result.mappings():
                found[row[key.name]] = dict(row)
    return found
