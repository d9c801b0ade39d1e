"""SQL implementations of the second-factor ports.

Whatever must happen once — confirming a TOTP factor, accepting a TOTP step, storing a sign
counter, spending a recovery code, a challenge or an mfa_token — is one conditional UPDATE or
DELETE: of two parallel attempts the database lets exactly one change the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from bastion.adapters.sql import tables
from bastion.adapters.sql.transaction import SqlTransaction
from bastion.mfa.model import (
    MFA_TOKEN_MAX_WRONG_CODES,
    ChallengePurpose,
    Factor,
    FactorType,
    MfaToken,
    TotpFactor,
    WebAuthnChallenge,
    WebAuthnCredential,
)

_f = tables.mfa_factors.c
_w = tables.webauthn_credentials.c
_r = tables.recovery_codes.c
_ch = tables.webauthn_challenges.c
_t = tables.mfa_tokens.c

_FACTORS = select(
    tables.mfa_factors,
    _w.credential_id,
    _w.public_key,
    _w.sign_count,
    _w.transports,
    _w.aaguid,
    _w.backup_eligible,
    _w.backup_state,
    _w.passkey,
).select_from(tables.mfa_factors.outerjoin(tables.webauthn_credentials))
FACTORS_OF_USER = _FACTORS.where(_f.user_id == bindparam("user_id")).order_by(_f.created_at, _f.id)
FACTOR_OF_USER = _FACTORS.where(_f.user_id == bindparam("user_id"), _f.id == bindparam("factor_id"))
CREDENTIAL_BY_ID = _FACTORS.where(_w.credential_id == bindparam("credential_id"))
CONFIRM_TOTP = (
    update(tables.mfa_factors)
    .where(
        _f.id == bindparam("factor_id"),
        _f.type == FactorType.TOTP.value,
        _f.confirmed_at.is_(None),
        _f.created_at > bindparam("created_after"),
    )
    .values(
        confirmed_at=bindparam("now"),
        last_used_at=bindparam("now"),
        totp_last_step=bindparam("step"),
    )
)
ADVANCE_TOTP_STEP = (
    update(tables.mfa_factors)
    .where(
        _f.id == bindparam("factor_id"),
        _f.type == FactorType.TOTP.value,
        _f.confirmed_at.is_not(None),
        or_(_f.totp_last_step.is_(None), _f.totp_last_step < bindparam("step")),
    )
    .values(totp_last_step=bindparam("step"), last_used_at=bindparam("now"))
)
# The sign-counter rule of mfa.model.sign_count_accepted, re-checked by the statement that
# stores the counter, so that two assertions racing with one counter cannot both pass.
RECORD_SIGN_COUNT = (
    update(tables.webauthn_credentials)
    .where(
        _w.factor_id == bindparam("credential_factor"),
        or_(
            _w.sign_count < bindparam("new_count"),
            and_(_w.sign_count == 0, bindparam("new_count") == 0),
        ),
    )
    .values(sign_count=bindparam("new_count"), backup_state=bindparam("backed_up"))
)
TOUCH_FACTOR = (
    update(tables.mfa_factors)
    .where(_f.id == bindparam("factor_id"))
    .values(last_used_at=bindparam("now"))
)
USE_RECOVERY_CODE = (
    update(tables.recovery_codes)
    .where(
        _r.user_id == bindparam("owner"),
        _r.code_hash == bindparam("digest"),
        _r.used_at.is_(None),
    )
    .values(used_at=bindparam("now"))
)
RECOVERY_CODES_LEFT = select(func.count()).where(
    _r.user_id == bindparam("user_id"), _r.used_at.is_(None)
)
SPEND_CHALLENGE = (
    delete(tables.webauthn_challenges)
    .where(
        _ch.challenge_hash == bindparam("challenge_hash"),
        _ch.purpose == bindparam("purpose"),
        _ch.expires_at > bindparam("now"),
    )
    .returning(*tables.webauthn_challenges.c)
)
FORGET_EXPIRED_CHALLENGES = delete(tables.webauthn_challenges).where(
    _ch.expires_at <= bindparam("now")
)
_USABLE_TOKEN = (
    _t.token_hash == bindparam("hashed"),
    _t.used_at.is_(None),
    _t.expires_at > bindparam("now"),
    _t.wrong_codes < bindparam("max_wrong_codes"),
)
SPEND_MFA_TOKEN = (
    update(tables.mfa_tokens)
    .where(*_USABLE_TOKEN)
    .values(used_at=bindparam("now"))
    .returning(*tables.mfa_tokens.c)
)
COUNT_WRONG_CODE = (
    update(tables.mfa_tokens)
    .where(*_USABLE_TOKEN)
    .values(wrong_codes=_t.wrong_codes + 1)
    .returning(_t.wrong_codes)
)
MFA_TOKEN_BY_HASH = select(tables.mfa_tokens).where(_t.token_hash == bindparam("hashed"))
FORGET_EXPIRED_MFA_TOKENS = delete(tables.mfa_tokens).where(_t.expires_at <= bindparam("now"))


class SqlFactorRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add_totp(self, factor: TotpFactor) -> None:
        self._db.insert_later(
            tables.mfa_factors,
            {
                **_factor_row(factor),
                "totp_secret_sealed": factor.secret_sealed,
                "totp_last_step": factor.last_step,
            },
        )

    async def add_webauthn(self, credential: WebAuthnCredential) -> None:
        self._db.insert_later(tables.mfa_factors, _factor_row(credential))
        self._db.insert_later(
            tables.webauthn_credentials,
            {
                "factor_id": credential.id,
                "credential_id": credential.credential_id,
                "public_key": credential.public_key,
                "sign_count": credential.sign_count,
                "transports": list(credential.transports),
                "aaguid": credential.aaguid,
                "backup_eligible": credential.backup_eligible,
                "backup_state": credential.backup_state,
                "passkey": credential.passkey,
            },
        )

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> list[Factor]:
        query = FACTORS_OF_USER
        if for_update and self._db.dialect == "postgresql":
            # Locks the user's factor rows; SQLite write transactions already run one at a time.
            query = query.with_for_update(of=tables.mfa_factors)
        rows = (await self._db.execute(query, {"user_id": user_id})).mappings()
        return [_factor(row) for row in rows]

    async def get(self, user_id: uuid.UUID, factor_id: uuid.UUID) -> Factor | None:
        parameters = {"user_id": user_id, "factor_id": factor_id}
        row = (await self._db.execute(FACTOR_OF_USER, parameters)).mappings().first()
        return _factor(row) if row else None

    async def credential(self, credential_id: bytes) -> WebAuthnCredential | None:
        parameters = {"credential_id": credential_id}
        row = (await self._db.execute(CREDENTIAL_BY_ID, parameters)).mappings().first()
        found = _factor(row) if row else None
        return found if isinstance(found, WebAuthnCredential) else None

    async def confirm_totp(
        self, factor_id: uuid.UUID, step: int, now: datetime, created_after: datetime
    ) -> bool:
        parameters = {"factor_id": factor_id, "step": step, "now": now}
        result = await self._db.execute(
            CONFIRM_TOTP, {**parameters, "created_after": created_after}
        )
        return result.rowcount == 1

    async def advance_totp_step(self, factor_id: uuid.UUID, step: int, now: datetime) -> bool:
        parameters = {"factor_id": factor_id, "step": step, "now": now}
        return (await self._db.execute(ADVANCE_TOTP_STEP, parameters)).rowcount == 1

    async def record_assertion(
        self, factor_id: uuid.UUID, sign_count: int, backup_state: bool, now: datetime
    ) -> bool:
        parameters = {
            "credential_factor": factor_id,
            "new_count": sign_count,
            "backed_up": backup_state,
        }
        if (await self._db.execute(RECORD_SIGN_COUNT, parameters)).rowcount != 1:
            return False
        await self._db.execute(TOUCH_FACTOR, {"factor_id": factor_id, "now": now})
        return True

    async def rename(self, user_id: uuid.UUID, factor_id: uuid.UUID, name: str) -> bool:
        statement = (
            update(tables.mfa_factors)
            .where(_f.user_id == user_id, _f.id == factor_id)
            .values(name=name)
        )
        return (await self._db.execute(statement)).rowcount == 1

    async def delete(self, user_id: uuid.UUID, factor_ids: Sequence[uuid.UUID]) -> int:
        if not factor_ids:
            return 0
        statement = delete(tables.mfa_factors).where(
            _f.user_id == user_id, _f.id.in_(list(factor_ids))
        )
        return int((await self._db.execute(statement)).rowcount)


def _factor_row(factor: Factor) -> dict[str, Any]:
    return {
        "id": factor.id,
        "user_id": factor.user_id,
        "type": factor.type.value,
        "name": factor.name,
        "created_at": factor.created_at,
        "confirmed_at": factor.confirmed_at,
        "last_used_at": factor.last_used_at,
    }


def _factor(row: Any) -> Factor:
    if row["type"] == FactorType.TOTP.value:
        return TotpFactor(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            secret_sealed=row["totp_secret_sealed"],
            created_at=row["created_at"],
            confirmed_at=row["confirmed_at"],
            last_used_at=row["last_used_at"],
            last_step=row["totp_last_step"],
        )
    return WebAuthnCredential(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        credential_id=row["credential_id"],
        public_key=row["public_key"],
        sign_count=row["sign_count"],
        transports=tuple(row["transports"]),
        aaguid=row["aaguid"],
        backup_eligible=row["backup_eligible"],
        backup_state=row["backup_state"],
        passkey=row["passkey"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )


class SqlRecoveryCodeRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def replace(self, user_id: uuid.UUID, digests: Sequence[str], now: datetime) -> None:
        await self.delete_all(user_id)
        for digest in digests:
            self._db.insert_later(
                tables.recovery_codes,
                {"user_id": user_id, "code_hash": digest, "created_at": now, "used_at": None},
            )

    async def use(self, user_id: uuid.UUID, digest: str, now: datetime) -> bool:
        parameters = {"owner": user_id, "digest": digest, "now": now}
        return (await self._db.execute(USE_RECOVERY_CODE, parameters)).rowcount == 1

    async def remaining(self, user_id: uuid.UUID) -> int:
        return int((await self._db.execute(RECOVERY_CODES_LEFT, {"user_id": user_id})).scalar_one())

    async def delete_all(self, user_id: uuid.UUID) -> None:
        await self._db.execute(delete(tables.recovery_codes).where(_r.user_id == user_id))


class SqlWebAuthnChallengeRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, challenge: WebAuthnChallenge) -> None:
        await self._db.execute(FORGET_EXPIRED_CHALLENGES, {"now": challenge.created_at})
        self._db.insert_later(
            tables.webauthn_challenges,
            {
                "challenge_hash": challenge.challenge_hash,
                "purpose": challenge.purpose.value,
                "user_id": challenge.user_id,
                "passkey": challenge.passkey,
                "created_at": challenge.created_at,
                "expires_at": challenge.expires_at,
            },
        )

    async def spend(
        self, challenge_hash: str, purpose: ChallengePurpose, now: datetime
    ) -> WebAuthnChallenge | None:
        parameters = {"challenge_hash": challenge_hash, "purpose": purpose.value, "now": now}
        row = (await self._db.execute(SPEND_CHALLENGE, parameters)).mappings().first()
        if row is None:
            return None
        return WebAuthnChallenge(
            challenge_hash=row["challenge_hash"],
            purpose=ChallengePurpose(row["purpose"]),
            user_id=row["user_id"],
            passkey=row["passkey"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )


class SqlMfaTokenRepository:
    def __init__(self, connection: SqlTransaction) -> None:
        self._db = connection

    async def add(self, token: MfaToken) -> None:
        await self._db.execute(FORGET_EXPIRED_MFA_TOKENS, {"now": token.created_at})
        self._db.insert_later(
            tables.mfa_tokens,
            {
                "token_hash": token.token_hash,
                "user_id": token.user_id,
                "remember_me": token.remember_me,
                "security_state": token.security_state,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "wrong_codes": token.wrong_codes,
                "used_at": token.used_at,
            },
        )

    async def get(self, token_hash: str) -> MfaToken | None:
        parameters = {"hashed": token_hash}
        row = (await self._db.execute(MFA_TOKEN_BY_HASH, parameters)).mappings().first()
        return MfaToken(**row) if row else None

    async def spend(self, token_hash: str, now: datetime) -> MfaToken | None:
        row = (
            (await self._db.execute(SPEND_MFA_TOKEN, self._usable(token_hash, now)))
            .mappings()
            .first()
        )
        return MfaToken(**row) if row else None

    async def count_wrong_code(self, token_hash: str, now: datetime) -> int | None:
        result = await self._db.execute(COUNT_WRONG_CODE, self._usable(token_hash, now))
        wrong_codes: int | None = result.scalar_one_or_none()
        return wrong_codes

    def _usable(self, token_hash: str, now: datetime) -> dict[str, Any]:
        return {"hashed": token_hash, "now": now, "max_wrong_codes": MFA_TOKEN_MAX_WRONG_CODES}
